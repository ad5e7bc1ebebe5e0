"""Which class a targeted attack pushes each image to, from what an attacker knows: the oracle's label of
the clean image, and the substitute."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.vocabulary import TARGET_CHOICES, TargetChoice
from bbrange.shared.devices import as_batch


def choose_targets(
    choice: TargetChoice,
    source: np.ndarray,
    num_classes: int,
    *,
    seed: int = 0,
    target_class: int | None = None,
    model: nn.Module | None = None,
    x: np.ndarray | None = None,
    device: torch.device | None = None,
) -> np.ndarray:
    """One target per image: uniform among the other classes than `source` (seeded), (source + 1) mod C,
    the substitute's least likely class (needs `model` and `x`), or `target_class` for all."""
    source = np.asarray(source, dtype=np.int64)
    if choice == "fixed":
        if target_class is None or not 0 <= target_class < num_classes:
            raise ValueError(f"target_class must be one of the model's {num_classes} classes, got {target_class}")
        return np.full(len(source), target_class, dtype=np.int64)
    if choice == "next":
        return (source + 1) % num_classes
    if choice == "random":
        offset = np.random.default_rng(seed).integers(1, num_classes, size=len(source))
        return (source + offset) % num_classes
    if choice == "least_likely":
        if model is None or x is None:
            raise ValueError("the least likely target needs the substitute and the images")
        device = device or torch.device("cpu")
        with torch.no_grad():
            logits = torch.cat([model(as_batch(x[i : i + 1000], device)).cpu() for i in range(0, len(x), 1000)])
        return logits.argmin(1).numpy().astype(np.int64)
    raise ValueError(f"unknown target choice {choice!r}; known: {', '.join(TARGET_CHOICES)}")
