"""The one loop of the iterative gradient attacks, and the plug-in base they share.

    x⁰ = x, or a random start in the ε-ball            (PGD: uniform; R+FGSM: α·sgn(N(0, I)))
    g⁰ = 0
    for t < T:
        ∇ = ∇x L(F(D(xᵗ)), y)                          (L: ce or margin, losses.py; D: DI's input diversity, or none)
        gᵗ⁺¹ = μ·gᵗ + ∇/‖∇‖₁                           (MI-FGSM's momentum; with μ = 0 the plain gradient's direction)
        xᵗ⁺¹ = Π_{ε-ball ∩ [0,1]}(xᵗ + α·dir(gᵗ⁺¹))    (dir: sgn for L∞, g/‖g‖₂ for L2)

y is the substitute's own label of the clean image, fixed for every step: what an attacker without ground truth
has, and free of label leaking (fgsm.py). The random draws (starts, input diversity) come from one generator per
crafted set, seeded by the campaign's seed, drawn on the CPU: the same seed gives the same examples on any device.
The geometry (directions, projection, random start) is bbrange.shared.adversarial's, which the adversarial
training of oracles and substitutes takes too.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.attack import Attack, CraftingContext, CraftingProgress, craft_in_batches, sizes_of
from bbrange.attacker.engine.transfer_attacks.losses import loss_gradient
from bbrange.attacker.engine.vocabulary import CraftingLoss, Norm
from bbrange.shared.adversarial import ascent_direction, project
from bbrange.shared.perturbations import noise_of_size

Start = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (x, generator) -> x⁰
Diversity = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (x, generator) -> D(x), differentiable


@dataclass(frozen=True)
class Steps:
    """How the loop runs: T steps of size α, from `start` (None: x itself), with momentum μ and input diversity."""

    steps: int
    step_size: float
    start: Start | None = None
    momentum: float = 0.0
    diversity: Diversity | None = None


@torch.no_grad()
def own_labels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    labels: torch.Tensor = model(x).argmax(1)
    return labels


def iterate(model: nn.Module, x: torch.Tensor, eps: float, norm: Norm, loss: CraftingLoss, how: Steps,
            generator: torch.Generator, clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    """The loop above on one batch: x* within ε of x in `norm` and within [clip_min, clip_max]."""
    x = x.detach()
    y = own_labels(model, x)
    x_adv = x.clone() if how.start is None else how.start(x, generator)
    g = torch.zeros_like(x)
    diversity = how.diversity
    transform = None if diversity is None else (lambda z: diversity(z, generator))
    for _ in range(how.steps):
        grad = loss_gradient(model, x_adv, y, loss, transform)
        l1 = grad.abs().flatten(1).sum(1).clamp_min(torch.finfo(grad.dtype).tiny)
        g = how.momentum * g + grad / l1.view(-1, *([1] * (x.dim() - 1)))
        x_adv = project(x_adv + how.step_size * ascent_direction(g, norm), x, eps, norm, clip_min, clip_max)
    return x_adv.detach()


@dataclass(frozen=True)
class GradientAttack(Attack):
    """An untargeted gradient attack crafted white-box on the substitute (or an ensemble's averaged logits: any
    `nn.Module`), of size `eps` in `norm`, ascending `loss`; with `more_sizes`, also each further ε from the same
    substitute (`size_sweep`). Its noise baseline: random noise of size ε in the same norm on the same images
    (random ±ε on every feature for L∞, a random direction of L2 length ε). A subclass says how it steps."""

    targeted: ClassVar[bool] = False
    norms: ClassVar[tuple[Norm, ...]] = ("linf", "l2")
    eps: float = 0.3
    norm: Norm = "linf"
    loss: CraftingLoss = "ce"
    clip_min: float = 0.0
    clip_max: float = 1.0
    batch_size: int = 1000
    more_sizes: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.norm not in self.norms:
            raise ValueError(f"{self.name} supports the norm(s) {', '.join(self.norms)}, not {self.norm!r}")
        if self.eps <= 0 or (self.norm == "linf" and self.eps > self.clip_max - self.clip_min):
            raise ValueError(f"ε = {self.eps} is not a size in {self.norm}")

    @abstractmethod
    def schedule(self) -> Steps:
        """The loop's settings at this attack's ε."""

    def perturb(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        model.eval()
        return iterate(model, x, self.eps, self.norm, self.loss, self.schedule(), generator, self.clip_min, self.clip_max)

    def craft(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """x* of one batch, its random draws from seed 0 (`craft_set` draws a whole set from the campaign's seed)."""
        return self.perturb(model, x, torch.Generator().manual_seed(0))

    def craft_set(self, context: CraftingContext, targets: np.ndarray | None,
                  progress: CraftingProgress) -> np.ndarray:
        generator = torch.Generator().manual_seed(context.seed)
        return craft_in_batches(lambda model, xb, tb: self.perturb(model, xb, generator), context, targets, progress,
                                self.batch_size)

    def noise(self, x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return noise_of_size(x, self.eps, self.norm, rng, clip_min=self.clip_min, clip_max=self.clip_max)

    def size_sweep(self) -> tuple[tuple[float, Attack], ...]:
        return sizes_of(self, self.eps, self.more_sizes)
