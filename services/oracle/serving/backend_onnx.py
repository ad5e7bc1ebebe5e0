"""The ONNX Runtime backend: imported models, from the ONNX file their card vouches for.

The card's preprocessing (value range, channel order, mean/std, layout) turns the wire's [0, 1] NCHW batch
into what the model was trained on. A graph with a fixed batch size runs in chunks of that size, the last
one padded."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from bbrange.shared.model_card import ModelCard, OnnxGraph, Preprocessing, verified_weights

log = logging.getLogger(__name__)


def providers_for(device: torch.device) -> list[str]:
    """ONNX Runtime's execution providers for a torch device: CUDA first on a GPU when this onnxruntime has it."""
    available = ort.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        log.warning("device is %s but this onnxruntime has no CUDA provider (install onnxruntime-gpu): "
                    "ONNX models run on the CPU", device)
    return ["CPUExecutionProvider"]


def session_for(model_bytes: bytes, device: torch.device) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ONNX Runtime's warnings about unused initializers are noise here
    return ort.InferenceSession(model_bytes, sess_options=options, providers=providers_for(device))


class OnnxBackend:
    kind = "onnxruntime"

    def __init__(self, session: ort.InferenceSession, graph: OnnxGraph, preprocessing: Preprocessing) -> None:
        self.session = session
        self.graph = graph
        self.preprocessing = preprocessing
        self.device = session.get_providers()[0]

    @classmethod
    def open(cls, card_file: Path, device: torch.device) -> tuple[OnnxBackend, ModelCard]:
        data, card = verified_weights(card_file)
        if card.onnx is None:
            raise ValueError(f"{card_file}: an onnx card without its graph's input and output names")
        return cls(session_for(data, device), card.onnx, card.preprocessing), card

    def scores(self, x: np.ndarray) -> np.ndarray:
        """The model's first output for a wire batch (float32 NCHW in [0, 1])."""
        inputs = self.preprocessing.apply(x)
        fixed = self.graph.fixed_batch
        if fixed is None or len(inputs) == fixed:
            return np.asarray(self.session.run([self.graph.output_name], {self.graph.input_name: inputs})[0])
        chunks = []
        for start in range(0, len(inputs), fixed):
            chunk = inputs[start:start + fixed]
            n = len(chunk)
            if n < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), dtype=chunk.dtype)])
            chunks.append(np.asarray(self.session.run([self.graph.output_name], {self.graph.input_name: chunk})[0])[:n])
        return np.concatenate(chunks)

    def labels(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.scores(x).argmax(1), dtype=np.int64)

    def close(self) -> None:
        pass
