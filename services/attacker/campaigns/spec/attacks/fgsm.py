"""FGSM in a campaign spec: ε, or a list of sizes crafted on the one substitute (the engine's fgsm.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bbrange.attacker.campaigns.spec.attacks.registry import register_attack
from bbrange.attacker.campaigns.spec.attacks.sized import SizedCrafting

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class FgsmCrafting(SizedCrafting):
    method: Literal["fgsm"]

    def label(self) -> str:
        return f"FGSM {self.sizes_label()}"


def engine_fgsm(spec: FgsmCrafting) -> Attack:
    from bbrange.attacker.engine.fgsm import FGSM

    first, *more = spec.sizes()
    return FGSM(eps=first, more_sizes=tuple(more))


register_attack("fgsm", FgsmCrafting, engine_fgsm)
