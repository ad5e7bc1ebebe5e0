"""Inference backends: what turns a validated batch into labels, whatever runs the model.

A served model is a card and a `Backend`: `TorchBackend` for the models this project trained (safetensors
weights, an architecture of `shared/architectures.py`), `OnnxBackend` for imported ONNX files (ONNX Runtime,
with its CUDA provider when the device is a GPU and the provider is installed). `open_backend` picks one by
the card's format, after checking the weights against the card's sha256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from bbrange.shared.model_card import ModelCard, read_card


class Backend(Protocol):
    """Labels of a float32 (batch, C, H, W) batch in [0, 1], already validated against the card's shape."""

    kind: str  # "torch" or "onnxruntime", for logs and metrics
    device: str  # where it runs, e.g. "cpu", "cuda:0", "CUDAExecutionProvider"

    def labels(self, x: np.ndarray) -> np.ndarray:
        """int64 labels, one per input (argmax of the model's class scores). Called from one thread at a time."""
        ...

    def close(self) -> None: ...


def open_backend(card_file: Path, device: torch.device) -> tuple[Backend, ModelCard]:
    """The backend that serves this card, on `device` (or the nearest its runtime offers)."""
    if read_card(card_file).format == "onnx":
        from bbrange.oracle.serving.backend_onnx import OnnxBackend

        return OnnxBackend.open(card_file, device)
    from bbrange.oracle.serving.backend_torch import TorchBackend

    return TorchBackend.open(card_file, device)
