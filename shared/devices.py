"""Where tensors run: the GPU when asked for or available, the CPU otherwise, and in which layout."""

from __future__ import annotations

import numpy as np
import torch


def resolve_device(choice: str = "auto") -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {choice!r}; use auto, cpu or cuda")
    return torch.device(choice)


def as_batch(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on `device` with the standard strides of its shape (a copy only when they differ).

    NumPy leaves the stride of a size-1 axis arbitrary (`x[:, None]` makes it 0; fancy indexing a
    one-channel batch makes it 1), and torch reads a (N, 1, H, W) batch whose channel stride is 1 as
    channels-last: its convolutions then take another kernel, which rounds differently. The attacks
    follow gradient signs and near-boundary labels, which turn that rounding into a different substitute,
    so without this the same seed gave results several points apart depending on how a caller had
    sliced its array.
    """
    t = torch.as_tensor(x)
    if t.stride() == torch.empty(t.shape, device="meta").stride():
        return t.to(device)
    return torch.empty(t.shape, dtype=t.dtype, device=device).copy_(t)
