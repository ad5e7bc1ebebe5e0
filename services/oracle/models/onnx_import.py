"""Importing a model that this project did not train: an ONNX file, checked against what its owner declares.

`import_onnx` refuses (ImportRefused, with a message that says what differs) a file that is not ONNX, that
the checker or ONNX Runtime rejects, that reads external data files, that has more than one input, or whose
input or output does not match the declared input shape, layout and classes. It then runs the model once,
measures its accuracy on the dataset's test set when the dataset has one (mnist, gtsrb; not custom), and
writes `<name>.onnx` and the card `<name>.json` (sha256, input, classes, preprocessing, accuracy), card last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch
from onnx.external_data_helper import _get_all_tensors, uses_external_data
from pydantic import BaseModel, Field

from bbrange.oracle.serving.backend_onnx import OnnxBackend, session_for
from bbrange.shared.datasets import Dataset, DatasetUnavailable, load_dataset
from bbrange.shared.model_card import ModelCard, OnnxGraph, Preprocessing, card_path

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
IMPORT_DATASETS = ("mnist", "gtsrb", "custom")


class ImportRefused(ValueError):
    """The file cannot be served as declared; the message says why."""


class ImportSpec(BaseModel):
    """What the owner of a model declares about it. For mnist and gtsrb, the input shape and class names
    default to the dataset's; for custom, the input shape is required and the classes default to 0..k-1."""

    name: str = Field(pattern=NAME_PATTERN, description="Model name (the file names in the model directory)")
    dataset: Literal["mnist", "gtsrb", "custom"]
    input_shape: tuple[int, int, int] | None = Field(None, description="(channels, height, width) of one input")
    class_names: list[str] | None = None
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def _parse(data: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError, or whatever a malformed file makes the parser raise
        raise ImportRefused(f"not an ONNX model: the file does not parse as an ONNX ModelProto ({e})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ImportRefused("not an ONNX model: the file has no graph")
    if any(uses_external_data(t) for t in _get_all_tensors(model)):
        raise ImportRefused("the model reads its weights from external data files; import a single self-contained "
                            ".onnx file (onnx.save_model with save_as_external_data=False)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ImportRefused(f"the ONNX checker refuses the model: {str(e).splitlines()[0]}") from None
    return model


def inspect_graph(model: onnx.ModelProto, input_shape: tuple[int, int, int], layout: str,
                  num_classes: int | None) -> OnnxGraph:
    """The graph's input and output, if they match the declaration; ImportRefused saying what differs."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ImportRefused(f"the graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); the oracle "
                            "serves models with one image input")
    inp = inputs[0]
    elem = inp.type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise ImportRefused(f"the graph's input {inp.name!r} is {onnx.TensorProto.DataType.Name(elem).lower()}; the "
                            "oracle feeds float32 (declare value_range 0,255 for a model trained on 0..255)")
    dims = _dims(inp)
    c, h, w = input_shape
    axes = ("channels", "height", "width") if layout == "nchw" else ("height", "width", "channels")
    declared = (c, h, w) if layout == "nchw" else (h, w, c)
    described = f"(batch, {', '.join(f'{a} {v}' for a, v in zip(axes, declared, strict=True))}) in {layout.upper()}"
    if len(dims) != 4:
        raise ImportRefused(f"declared input {described} is rank 4, but the graph's input {inp.name!r} has rank "
                            f"{len(dims)}: {dims}")
    differs = [f"{axis} {want} ≠ {got}" for axis, want, got in zip(axes, declared, dims[1:], strict=True)
               if isinstance(got, int) and got != want]
    if differs:
        raise ImportRefused(f"declared input {described} does not match the graph's input {inp.name!r} {dims}: "
                            + ", ".join(differs))
    output = graph.output[0]
    out_dims = _dims(output)
    if out_dims and len(out_dims) != 2:
        raise ImportRefused(f"the graph's first output {output.name!r} has shape {out_dims}; the oracle needs "
                            "class scores of shape (batch, classes)")
    if num_classes is not None and len(out_dims) == 2 and isinstance(out_dims[1], int) and out_dims[1] != num_classes:
        raise ImportRefused(f"{num_classes} classes are declared, but the graph's output {output.name!r} has "
                            f"{out_dims[1]} scores per input {out_dims}")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    fixed = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    producer = f"{model.producer_name} {model.producer_version}".strip()
    return OnnxGraph(input_name=inp.name, output_name=output.name, opset=opset, producer=producer, fixed_batch=fixed)


def _test_set(spec: ImportSpec, data_dir: Path | None, download: bool) -> Dataset | None:
    if spec.dataset == "custom":
        return None
    try:
        return load_dataset(spec.dataset, "test", data_dir, download=download)
    except DatasetUnavailable as e:
        raise ImportRefused(f"the {spec.dataset} test set is not available here, so the accuracy cannot be "
                            f"measured: {e}") from None


def import_onnx(data: bytes, spec: ImportSpec, model_dir: Path, *, source: str | None = None,
                data_dir: Path | None = None, download: bool = True, device: torch.device | None = None,
                replace: bool = False) -> ModelCard:
    """Check, measure and store an ONNX model; the card it was stored with."""
    started = time.perf_counter()
    device = device or torch.device("cpu")
    if not replace and card_path(model_dir, spec.name).exists():
        raise ImportRefused(f"a model named {spec.name!r} exists in {model_dir}; choose another name")
    model = _parse(data)
    test = _test_set(spec, data_dir, download)
    input_shape = spec.input_shape or (test.input_shape if test is not None else None)
    if input_shape is None:
        raise ImportRefused("--dataset custom needs the input shape (channels, height, width)")
    if test is not None and input_shape != test.input_shape:
        raise ImportRefused(f"declared input shape {input_shape} is not {spec.dataset}'s {test.input_shape}; "
                            "use --dataset custom for another input")
    class_names = spec.class_names or (list(test.class_names) if test is not None else None)
    if test is not None and len(class_names or []) != test.num_classes:
        raise ImportRefused(f"{len(class_names or [])} class names are declared; {spec.dataset} has {test.num_classes}")
    try:
        spec.preprocessing.check_channels(input_shape[0])
    except ValueError as e:
        raise ImportRefused(str(e)) from None
    graph = inspect_graph(model, input_shape, spec.preprocessing.layout,
                          len(class_names) if class_names is not None else None)
    try:
        backend = OnnxBackend(session_for(data, device), graph, spec.preprocessing)
        probe = backend.scores(np.zeros((2, *input_shape), dtype=np.float32))
    except Exception as e:  # onnxruntime raises its own exception types for unsupported ops and shapes
        raise ImportRefused(f"ONNX Runtime cannot run the model on a {input_shape} input: "
                            f"{str(e).splitlines()[0]}") from None
    if probe.ndim != 2 or probe.shape[0] != 2:
        raise ImportRefused(f"for a batch of 2 inputs the model's output {graph.output_name!r} has shape "
                            f"{probe.shape}; the oracle needs class scores of shape (batch, classes)")
    num_classes = int(probe.shape[1])
    class_names = class_names or [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ImportRefused(f"{len(class_names)} classes are declared, but the model gives {num_classes} scores "
                            "per input")
    accuracy = None
    if test is not None:
        labels = np.concatenate([backend.labels(test.x[i:i + 500]) for i in range(0, len(test), 500)])
        accuracy = float((labels == test.y).mean())
    model_dir.mkdir(parents=True, exist_ok=True)
    weights = model_dir / f"{spec.name}.onnx"
    weights.write_bytes(data)
    card = ModelCard(
        name=spec.name, format="onnx", architecture="onnx",
        architecture_layers=f"ONNX opset {graph.opset}, {len(model.graph.node)} nodes"
                            + (f", from {graph.producer}" if graph.producer else ""),
        dataset=spec.dataset, input_shape=input_shape, num_classes=num_classes, class_names=class_names,
        weights_file=weights.name, weights_sha256=hashlib.sha256(data).hexdigest(),
        test_accuracy=accuracy, test_samples=len(test) if test is not None else 0,
        preprocessing=spec.preprocessing, onnx=graph, imported_from=Path(source).name if source else None,
        wall_time_s=time.perf_counter() - started, device=backend.device, torch_version=torch.__version__,
        created_at=dt.datetime.now(dt.UTC).isoformat(),
    )
    card_path(model_dir, spec.name).write_text(card.model_dump_json(indent=2) + "\n")
    return card


def valid_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None


def floats(text: str | None, what: str) -> tuple[float, ...] | None:
    """'0.5,0.5,0.5' as floats; ValueError naming `what` otherwise."""
    if text is None or text == "":
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None


def preprocessing_of(value_range: str | None, channel_order: str, mean: str | None, std: str | None,
                     layout: str) -> Preprocessing:
    """The preprocessing declared as command-line or query strings; ValueError (pydantic's too) if invalid."""
    low_high = floats(value_range, "value range")
    if low_high is not None and len(low_high) != 2:
        raise ValueError(f"value range must be two numbers, low,high; got {value_range!r}")
    return Preprocessing.model_validate({
        "value_range": low_high or (0.0, 1.0), "channel_order": channel_order, "mean": floats(mean, "mean"),
        "std": floats(std, "std"), "layout": layout,
    })
