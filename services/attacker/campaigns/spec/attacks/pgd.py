"""PGD and I-FGSM in a campaign spec (the engine's transfer_attacks/pgd.py): T steps of α projected into the ε-ball,
from a random start (PGD, Madry et al. 2018) or from the image (I-FGSM, Kurakin et al. 2017); L∞ or L2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from bbrange.attacker.campaigns.spec.attacks.gradient import GradientCrafting, Steps, StepSize
from bbrange.attacker.campaigns.spec.attacks.registry import register_attack

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class PgdCrafting(GradientCrafting):
    method: Literal["pgd"]
    title = "PGD"
    steps: Steps = 40
    step_size: StepSize | None = Field(None, description="α; unset: ε/30 for L∞ (Madry et al.'s 0.01 at ε = 0.3), "
                                                         "2.5·ε/T for L2")


class IfgsmCrafting(GradientCrafting):
    method: Literal["ifgsm"]
    title = "I-FGSM"
    steps: Steps | None = Field(None, description="T; unset: Kurakin et al.'s min(255·ε + 4, 1.25·255·ε) for L∞ "
                                                  "(80 at ε = 0.3), 10 for L2")
    step_size: StepSize | None = Field(None, description="α; unset: 1/255 for L∞ (Kurakin et al.), 2.5·ε/T for L2")


def engine_pgd(spec: PgdCrafting) -> Attack:
    from bbrange.attacker.engine.transfer_attacks.pgd import PGD

    return PGD(**spec.engine_settings(), steps=spec.steps, step_size=spec.step_size)


def engine_ifgsm(spec: IfgsmCrafting) -> Attack:
    from bbrange.attacker.engine.transfer_attacks.pgd import IFGSM

    return IFGSM(**spec.engine_settings(), steps=spec.steps, step_size=spec.step_size)


register_attack("pgd", PgdCrafting, engine_pgd)
register_attack("ifgsm", IfgsmCrafting, engine_ifgsm)
