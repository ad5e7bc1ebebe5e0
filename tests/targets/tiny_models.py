"""Small classifiers of another family than ours (an MLP on the flattened image), trained in the tests and
served by the foreign model servers of tests/targets. Torch and numpy only: the KServe server imports this
file from its own virtual environment, where bbrange is not installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def mlp(input_shape: tuple[int, int, int], num_classes: int, hidden: int = 64) -> nn.Module:
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def train_mlp(x: np.ndarray, y: np.ndarray, num_classes: int, path: Path, epochs: int = 2, seed: int = 0) -> Path:
    """Train an MLP on (x in [0, 1] NCHW, y) and save its weights (a plain state dict) to `path`."""
    torch.manual_seed(seed)
    model = mlp(tuple(x.shape[1:]), num_classes)  # type: ignore[arg-type]
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    torch.save(model.state_dict(), path)
    return path


def load_mlp(path: Path, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    model = mlp(input_shape, num_classes)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def probabilities(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(np.asarray(x, dtype=np.float32))), 1).numpy()


def blobs(n: int, seed: int, shape: tuple[int, int, int] = (3, 48, 48), num_classes: int = 5
          ) -> tuple[np.ndarray, np.ndarray]:
    """A labelled toy RGB domain: class k is a bright 16x16 patch at the k-th place, in channel k mod C."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    x = rng.uniform(0.0, 0.35, size=(n, c, h, w)).astype(np.float32)
    y = rng.integers(0, num_classes, size=n).astype(np.int64)
    for i, k in enumerate(y):
        top, left = (k * 8) % (h - 16), (k * 13) % (w - 16)
        x[i, k % c, top : top + 16, left : left + 16] += 0.6
    return np.clip(x, 0.0, 1.0), y
