"""MI-FGSM in a campaign spec (the engine's transfer_attacks/mifgsm.py; Dong et al., CVPR 2018): μ, T, α; L∞ or L2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from bbrange.attacker.campaigns.spec.attacks.gradient import GradientCrafting, Momentum, Steps, StepSize
from bbrange.attacker.campaigns.spec.attacks.registry import register_attack

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class MifgsmCrafting(GradientCrafting):
    method: Literal["mifgsm"]
    title = "MI-FGSM"
    momentum: Momentum = 1.0
    steps: Steps = 10
    step_size: StepSize | None = Field(None, description="α; unset: ε/T (the paper)")


def engine_mifgsm(spec: MifgsmCrafting) -> Attack:
    from bbrange.attacker.engine.transfer_attacks.mifgsm import MIFGSM

    return MIFGSM(**spec.engine_settings(), momentum=spec.momentum, steps=spec.steps, step_size=spec.step_size)


register_attack("mifgsm", MifgsmCrafting, engine_mifgsm)
