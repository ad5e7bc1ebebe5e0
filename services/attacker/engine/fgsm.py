"""Fast gradient sign method (Goodfellow et al.), untargeted, L∞: x* = clip(x + ε·sgn(∇x c(F, x, y)))."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.attack import Attack, sizes_of
from bbrange.attacker.engine.transfer_attacks.losses import loss_gradient
from bbrange.shared.perturbations import noise_of_size


def gradient_sign(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """sgn of the cross-entropy gradient; y defaults to the model's own labels.

    Using the model's labels rather than true ones is what an attacker without ground truth does, and
    it avoids the "label leaking" of crafting with the true label. A saturated softmax still gives a
    direction (transfer_attacks/losses.py says how).
    """
    return loss_gradient(model, x, y, "ce").sign()


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    eps: float,
    y: torch.Tensor | None = None,
    *,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
    batch_size: int = 1000,
) -> torch.Tensor:
    """FGSM examples for a batch on any device, crafted `batch_size` at a time."""
    model.eval()
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size]
        yb = None if y is None else y[i : i + batch_size]
        out.append((xb + eps * gradient_sign(model, xb, yb)).clamp_(clip_min, clip_max).detach())
    return torch.cat(out) if out else x.clone()


@dataclass(frozen=True)
class FGSM(Attack):
    """Untargeted FGSM with L∞ size `eps`, crafted with the model's own labels; with `more_sizes`, also each
    further ε from the same substitute (`size_sweep`), after the headline."""

    name: ClassVar[str] = "fgsm"
    targeted: ClassVar[bool] = False
    eps: float = 0.3
    clip_min: float = 0.0
    clip_max: float = 1.0
    batch_size: int = 1000
    more_sizes: tuple[float, ...] = ()

    def craft(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        return fgsm(model, x, self.eps, clip_min=self.clip_min, clip_max=self.clip_max, batch_size=self.batch_size)

    def noise(self, x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random ±ε on every feature: the same L∞ step as FGSM, in a direction that knows nothing."""
        return noise_of_size(x, self.eps, "linf", rng, clip_min=self.clip_min, clip_max=self.clip_max)

    def size_sweep(self) -> tuple[tuple[float, Attack], ...]:
        return sizes_of(self, self.eps, self.more_sizes)
