"""R+FGSM (Tramèr et al., ICLR 2018, "Ensemble adversarial training", Section 4.1): a random step first,
x' = clip(x + α·sgn(N(0, I))), then FGSM from there with what is left of the budget,
x* = clip(x' + (ε − α)·sgn(∇x' L(x', y))). The random step escapes the sharp curvature a model keeps near its data
points (gradient masking, as single-step adversarial training leaves), where the plain gradient misleads. The
authors' MNIST code takes α = 0.05 at ε = 0.3 (ImageNet in the paper: α = ε/2). L∞ only, as the paper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from bbrange.attacker.engine.transfer_attacks.iterative import GradientAttack, Steps
from bbrange.attacker.engine.vocabulary import Norm


@dataclass(frozen=True)
class RFGSM(GradientAttack):
    name: ClassVar[str] = "rfgsm"
    norms: ClassVar[tuple[Norm, ...]] = ("linf",)
    alpha: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.alpha < min((self.eps, *self.more_sizes)):
            raise ValueError(f"R+FGSM's random step α = {self.alpha} must be positive and smaller than every ε")

    def schedule(self) -> Steps:
        alpha, low, high = self.alpha, self.clip_min, self.clip_max

        def start(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            signs = torch.randn(x.shape, generator=generator).sign().to(x.device, x.dtype)
            return (x + alpha * signs).clamp(low, high)

        return Steps(1, self.eps - alpha, start)
