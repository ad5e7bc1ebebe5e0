"""DI-FGSM in a campaign spec (the engine's transfer_attacks/difgsm.py; Xie et al., CVPR 2019): the input
diversity's probability and resize rate, the momentum (M-DI²-FGSM; 0: DI²-FGSM), T and α; L∞ only, as the paper."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from bbrange.attacker.campaigns.spec.attacks.gradient import GradientCrafting, Momentum, Steps, StepSize
from bbrange.attacker.campaigns.spec.attacks.registry import register_attack
from bbrange.attacker.engine.vocabulary import Norm

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class DifgsmCrafting(GradientCrafting):
    method: Literal["difgsm"]
    title = "DI-FGSM"
    norms: ClassVar[tuple[Norm, ...]] = ("linf",)
    probability: float = Field(0.5, ge=0, le=1, description="p: the share of steps whose gradient is taken through "
                                                            "a random resize and pad (the paper: 0.5)")
    resize_rate: float = Field(0.9, ge=0.5, lt=1, description="The image is shrunk to a random size between this "
                                                               "share of its side and its side, then padded back")
    momentum: Momentum = 1.0
    steps: Steps | None = Field(None, description="T; unset: Kurakin et al.'s count, as the paper (80 at ε = 0.3)")
    step_size: StepSize | None = Field(None, description="α; unset: 1/255 (the paper's one intensity level)")


def engine_difgsm(spec: DifgsmCrafting) -> Attack:
    from bbrange.attacker.engine.transfer_attacks.difgsm import DIFGSM

    return DIFGSM(**spec.engine_settings(), probability=spec.probability, resize_rate=spec.resize_rate,
                  momentum=spec.momentum, steps=spec.steps, step_size=spec.step_size)


register_attack("difgsm", DifgsmCrafting, engine_difgsm)
