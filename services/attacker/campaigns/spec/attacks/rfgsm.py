"""R+FGSM in a campaign spec (the engine's transfer_attacks/rfgsm.py; Tramèr et al., ICLR 2018): a random step of α,
then FGSM of ε − α; L∞ only, as the paper."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from bbrange.attacker.campaigns.spec.attacks.gradient import GradientCrafting
from bbrange.attacker.campaigns.spec.attacks.registry import register_attack
from bbrange.attacker.engine.vocabulary import Norm

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class RfgsmCrafting(GradientCrafting):
    method: Literal["rfgsm"]
    title = "R+FGSM"
    norms: ClassVar[tuple[Norm, ...]] = ("linf",)
    alpha: float = Field(0.05, gt=0, lt=1, description="α: the random step's L∞ size, taken before FGSM of ε − α "
                                                       "(the authors' MNIST code: 0.05 at ε = 0.3)")

    @model_validator(mode="after")
    def _room_for_the_gradient_step(self) -> RfgsmCrafting:
        if self.alpha >= min(self.sizes()):
            raise ValueError(f"the random step α = {self.alpha:g} must be smaller than every ε, which leaves "
                             "the gradient step ε − α")
        return self

    def label(self) -> str:
        return f"{super().label()}, α={self.alpha:g}"


def engine_rfgsm(spec: RfgsmCrafting) -> Attack:
    from bbrange.attacker.engine.transfer_attacks.rfgsm import RFGSM

    return RFGSM(**spec.engine_settings(), alpha=spec.alpha)


register_attack("rfgsm", RfgsmCrafting, engine_rfgsm)
