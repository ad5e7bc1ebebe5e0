"""The Open Inference Protocol (KServe V2) on the wire: infer requests in, label responses out.

A request is JSON, optionally followed by raw tensor bytes (the binary tensor extension that Triton's and
KServe's clients use by default): the `Inference-Header-Content-Length` header then says where the JSON ends,
and each input whose `parameters.binary_data_size` is set takes that many bytes, in order. Our models have
one input, (batch, C, H, W), FP32 in [0, 1] or UINT8 in 0..255, and one output, `label`: INT64, one per
input. Refusals raise ApiError (400 for anything malformed or unacceptable, as Triton answers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bbrange.oracle.api.request_body import validation_reason
from bbrange.shared.http_errors import ApiError
from bbrange.shared.wire import WireFormatError, to_unit_interval

OUTPUT_NAME = "label"
HEADER_LENGTH = "Inference-Header-Content-Length"
_DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}


class TensorSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[TensorSpec]
    outputs: list[RequestedOutput] | None = None


@dataclass(frozen=True)
class ParsedInfer:
    x: np.ndarray  # float32 (batch, C, H, W) in [0, 1]
    id: str | None
    binary_output: bool


def _bad(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def json_part_length(header_length: str | None, body_length: int, max_json_bytes: int) -> int:
    """How many leading bytes of the body are JSON: all of them, or what Inference-Header-Content-Length says.
    400 for a length that does not lie within the body; 413 for more JSON than max_json_bytes."""
    if header_length is None:
        length = body_length
    elif not header_length.isdigit() or int(header_length) > body_length:
        raise _bad(f"{HEADER_LENGTH} {header_length!r} is not a length within the body of {body_length} bytes")
    else:
        length = int(header_length)
    if length > max_json_bytes:
        raise ApiError(413, "body_too_large", f"the JSON of this request, {length} bytes, exceeds the limit of "
                                              f"{max_json_bytes} bytes for JSON")
    return length


def parse_infer(body: bytes, json_length: int, input_name: str, input_shape: tuple[int, ...],
                max_batch: int) -> ParsedInfer:
    """The validated batch of an infer request for a model with this input; its first json_length bytes are
    JSON (see json_part_length), the rest binary tensor data."""
    head, tail = body[:json_length], memoryview(body)[json_length:]
    try:
        request = InferRequest.model_validate_json(head)
    except ValidationError as e:  # invalid JSON, nested too deep, or not an inference request
        raise _bad(f"the request is not an inference request: {validation_reason(e)}", "malformed_json") from None
    if len(request.inputs) != 1 or request.inputs[0].name != input_name:
        sent = ", ".join(repr(t.name) for t in request.inputs) or "none"
        raise _bad(f"this model has one input, {input_name!r}; the request has {sent}", "wrong_input")
    tensor = request.inputs[0]
    dtype = _DTYPES.get(tensor.datatype)
    if dtype is None:
        raise _bad(f"datatype {tensor.datatype} is not accepted; send FP32 in [0, 1] or UINT8 in 0..255",
                   "unsupported_dtype")
    expected = "[batch, " + ", ".join(map(str, input_shape)) + "]"
    if len(tensor.shape) != len(input_shape) + 1 or tuple(tensor.shape[1:]) != tuple(input_shape):
        raise _bad(f"input shape {tensor.shape}; this model expects {expected}", "wrong_shape")
    n = tensor.shape[0]
    if n < 1:
        raise _bad("the batch is empty; send at least one input", "empty_batch")
    if n > max_batch:
        raise _bad(f"batch of {n} inputs exceeds the limit of {max_batch}", "batch_too_large")
    count = int(np.prod(tensor.shape))
    binary_size = tensor.parameters.get("binary_data_size")
    if binary_size is not None:
        if binary_size != count * dtype.itemsize or binary_size != len(tail):
            raise _bad(f"binary_data_size {binary_size} does not match: shape {tensor.shape} of {tensor.datatype} is "
                       f"{count * dtype.itemsize} bytes and {len(tail)} follow the JSON header", "wrong_shape")
        array = np.frombuffer(tail, dtype=dtype).reshape(tensor.shape)
    else:
        if len(tail):
            raise _bad(f"{len(tail)} bytes follow the JSON header but no input has binary_data_size")
        array = _from_json(tensor.data, tensor.datatype, tensor.shape, count)
    try:
        x = to_unit_interval(array.astype(array.dtype.newbyteorder("="), copy=False))
    except WireFormatError as e:
        raise _bad(e.message, e.code) from None
    x = x if x.flags.writeable and x.flags.c_contiguous else np.array(x, order="C")  # frombuffer is read-only
    return ParsedInfer(x, request.id, _binary_output(request))


def _from_json(data: Any, datatype: str, shape: list[int], count: int) -> np.ndarray:
    if data is None:
        raise _bad("the input has neither data nor parameters.binary_data_size")
    try:
        flat = np.asarray(data, dtype=np.float64 if datatype == "FP32" else np.int64).reshape(-1)
    except (ValueError, TypeError):
        raise _bad(f"input data are not {datatype} numbers in a (nested) list", "malformed_json") from None
    if flat.size != count:
        raise _bad(f"input data have {flat.size} values; shape {shape} needs {count}", "wrong_shape")
    if datatype == "UINT8":
        if flat.size and (flat.min() < 0 or flat.max() > 255):
            raise _bad("UINT8 data must lie in 0..255", "out_of_range")
        return flat.astype(np.uint8).reshape(shape)
    return flat.astype(np.float32).reshape(shape)


def _binary_output(request: InferRequest) -> bool:
    if request.outputs is None:
        return bool(request.parameters.get("binary_data_output", False))
    if not request.outputs or any(o.name != OUTPUT_NAME for o in request.outputs):
        sent = ", ".join(repr(o.name) for o in request.outputs) or "none"
        raise _bad(f"this model has one output, {OUTPUT_NAME!r}; the request asks for {sent}", "wrong_output")
    return bool(request.outputs[0].parameters.get("binary_data", False))


def infer_response(model: str, request_id: str | None, labels: np.ndarray, remaining: int,
                   binary: bool) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: labels as JSON data, or as raw little-endian int64 after the JSON."""
    output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "INT64", "shape": [int(labels.shape[0])]}
    raw = labels.astype("<i8").tobytes()
    if binary:
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = labels.tolist()
    response: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": [output],
                                "parameters": {"budget_remaining": remaining}}
    if request_id is not None:
        response["id"] = request_id
    head = json.dumps(response, separators=(",", ":")).encode()
    if not binary:
        return head, {"Content-Type": "application/json"}
    return head + raw, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}


def model_metadata(name: str, platform: str, input_name: str, input_shape: tuple[int, ...]) -> dict[str, Any]:
    return {
        "name": name, "versions": ["1"], "platform": platform,
        "inputs": [{"name": input_name, "datatype": "FP32", "shape": [-1, *input_shape]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "INT64", "shape": [-1]}],
    }
