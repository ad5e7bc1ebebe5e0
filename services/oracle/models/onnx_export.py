"""Exporting a served model as ONNX, so that its owner can take it elsewhere.

A trained model is exported by torch's ONNX exporter (the TorchScript-based one, which needs nothing beyond
torch and onnx) with a dynamic batch axis, input `input` (float32 (batch, C, H, W) in [0, 1]) and output
`scores`, then run once through ONNX Runtime to check that it gives torch's labels. An imported model is
written back as the bytes it was imported as (after the sha256 check).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from bbrange.oracle.serving.backend_onnx import OnnxBackend, session_for
from bbrange.shared.model_card import ModelCard, OnnxGraph, load_model, read_card, verified_weights

OPSET = 17


def torch_to_onnx(module: torch.nn.Module, input_shape: tuple[int, int, int], opset: int = OPSET) -> bytes:
    """An ONNX export of a torch classifier with a dynamic batch axis: input `input`, output `scores`."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation on every call
        torch.onnx.export(module.cpu().eval(), (torch.zeros(1, *input_shape),), buffer,  # type: ignore[arg-type]
                          input_names=["input"],
                          output_names=["scores"], dynamic_axes={"input": {0: "batch"}, "scores": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    return buffer.getvalue()


def export_onnx(card_file: Path, output: Path, opset: int = OPSET, check_inputs: int = 256) -> ModelCard:
    """Write the model of this card to `output` as ONNX; ValueError if ONNX Runtime's labels differ from torch's."""
    card = read_card(card_file)
    if card.format == "onnx":
        data, card = verified_weights(card_file)
        output.write_bytes(data)
        return card
    module, card = load_model(card_file, torch.device("cpu"))
    data = torch_to_onnx(module, card.input_shape, opset)
    x = np.random.default_rng(0).random((check_inputs, *card.input_shape), dtype=np.float32)
    with torch.inference_mode():
        expected = module(torch.from_numpy(x)).argmax(1).numpy()
    graph = OnnxGraph(input_name="input", output_name="scores", opset=opset)
    got = OnnxBackend(session_for(data, torch.device("cpu")), graph, card.preprocessing).labels(x)
    if (differ := int((got != expected).sum())) > 0:
        raise ValueError(f"the ONNX export of {card.name} labels {differ} of {check_inputs} random inputs differently "
                         "from torch; not written")
    output.write_bytes(data)
    return card
