"""Jacobian-based dataset augmentation (the black-box paper's Section 4.2) and the reservoir sampling of its
Section 6 refinements, which decides which points an epoch augments."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def jacobian_augment(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    lam: float,
    *,
    batch_size: int = 512,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
) -> torch.Tensor:
    """x + λ·sgn(∂F_{Õ(x)}/∂x), clipped: one backward of the summed selected logits per batch.

    The inputs of a batch are independent, so the gradient of Σ_i F_{y_i}(x_i) with respect to x_i
    is exactly the Jacobian row of sample i: the full Jacobian is never formed.
    """
    model.eval()
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size].detach().requires_grad_(True)
        selected = model(xb).gather(1, labels[i : i + batch_size, None]).sum()
        (grad,) = torch.autograd.grad(selected, xb)
        out.append((xb.detach() + lam * grad.sign()).clamp_(clip_min, clip_max))
    return torch.cat(out) if out else x.clone()


def reservoir_sample(n_items: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Algorithm R: a uniform sample of k indices from a stream of n_items, in one pass."""
    reservoir = np.arange(min(k, n_items))
    for i in range(k, n_items):
        j = int(rng.integers(0, i + 1))
        if j < k:
            reservoir[j] = i
    return np.sort(reservoir)
