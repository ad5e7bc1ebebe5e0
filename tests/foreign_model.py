"""A classifier this project did not train: a fresh torch module, unlike shared/architectures.py, that expects
MNIST as 0..255 values standardised with its own mean and std, trained briefly here and exported with torch's
own ONNX exporter. The tests import the ONNX file into the oracle and compare with this module."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

# The preprocessing its owner declares at import: inputs scaled to 0..255, then (x - MEAN) / STD.
VALUE_RANGE = (0.0, 255.0)
MEAN = 33.3
STD = 78.6
IMPORT_ARGS = ["--value-range", "0,255", "--mean", str(MEAN), "--std", str(STD)]


class ForeignNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 5, padding=2), nn.BatchNorm2d(8), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3), nn.GELU(), nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(16 * 16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def owner_preprocess(x: np.ndarray) -> np.ndarray:
    """What the model's owner feeds it, from images in [0, 1]."""
    return ((x * VALUE_RANGE[1] - MEAN) / STD).astype(np.float32)


def train_foreign(x: np.ndarray, y: np.ndarray, seed: int = 0) -> ForeignNet:
    torch.manual_seed(seed)
    model = ForeignNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(owner_preprocess(x)), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):
        for idx in torch.randperm(len(xs), generator=generator).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xs[idx]), ys[idx]).backward()
            optimizer.step()
    return model.eval()


def reference_labels(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(owner_preprocess(x))).argmax(1).numpy()


def export(model: nn.Module, path: Path, input_shape: tuple[int, ...] = (1, 28, 28), dynamic: bool = True) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, *input_shape),), str(path), input_names=["pixels"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"pixels": {0: "n"}, "logits": {0: "n"}} if dynamic else None)
    return path
