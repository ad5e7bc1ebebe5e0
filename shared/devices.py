"""Where tensors run: the GPU when asked for or available, the CPU otherwise."""

from __future__ import annotations

from typing import Literal

import torch

DeviceChoice = Literal["auto", "cpu", "cuda"]


def resolve_device(choice: str = "auto") -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {choice!r}; use auto, cpu or cuda")
    return torch.device(choice)
