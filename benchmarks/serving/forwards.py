"""The raw in-process forwards each served figure is compared with: torch and ONNX Runtime on one batch, back
to back, as the server runs them."""

from __future__ import annotations

import time

import numpy as np
import torch

from bbrange.oracle.serving.backend_onnx import OnnxBackend
from bbrange.shared.devices import as_batch


def raw_forward(module: torch.nn.Module, x: np.ndarray, device: torch.device, warmup_s: float,
                duration_s: float) -> float:
    """Labels/s of the in-process forward on one batch, as the server runs it (argmax and copy back included)."""
    def step() -> np.ndarray:
        return module(as_batch(x, device)).argmax(1).cpu().numpy()

    with torch.inference_mode():
        deadline = time.perf_counter() + warmup_s
        while time.perf_counter() < deadline:
            step()
        n = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < duration_s:
            step()
            n += 1
    return n * x.shape[0] / elapsed


def raw_onnx_forward(backend: OnnxBackend, x: np.ndarray, warmup_s: float, duration_s: float) -> float:
    """Labels/s of ONNX Runtime's forward on one batch, as the server runs it (preprocessing and argmax included)."""
    deadline = time.perf_counter() + warmup_s
    while time.perf_counter() < deadline:
        backend.labels(x)
    n = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < duration_s:
        backend.labels(x)
        n += 1
    return n * x.shape[0] / elapsed
