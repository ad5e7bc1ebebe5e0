"""The torch backend: models this project trained, from safetensors weights (no pickle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from bbrange.shared.devices import as_batch
from bbrange.shared.model_card import ModelCard, load_model


class TorchBackend:
    kind = "torch"

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        self.module = module
        self._device = device
        self.device = str(device)

    @classmethod
    def open(cls, card_file: Path, device: torch.device) -> tuple[TorchBackend, ModelCard]:
        module, card = load_model(card_file, device)
        return cls(module, device), card

    def labels(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            labels = self.module(as_batch(x, self._device)).argmax(1).cpu().numpy()
        return np.asarray(labels, dtype=np.int64)

    def close(self) -> None:
        pass
