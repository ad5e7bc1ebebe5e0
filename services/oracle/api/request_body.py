"""The body of a predict request: read within a size cap, decoded from .npy or JSON into an array."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import numpy as np
from fastapi import Request
from pydantic import ValidationError

from bbrange.shared.http_errors import ApiError
from bbrange.shared.schemas import PredictRequest
from bbrange.shared.wire import JSON_MEDIA_TYPE, NPY_MEDIA_TYPE, WireFormatError, decode_npy

P = ParamSpec("P")
T = TypeVar("T")

# The body is read raw (two media types, size-capped), so FastAPI cannot describe it from a parameter.
PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            NPY_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "description": "A NumPy .npy array (batch, C, H, W): float32 in [0, 1] or uint8 in 0..255",
            },
            JSON_MEDIA_TYPE: {"schema": PredictRequest.model_json_schema()},
        },
    }
}


# Every JSON document a predict or infer request carries is parsed by `parse_json`, on one of two threads kept for
# it: a large one never stalls the event loop (other clients' requests), and a burst of them cannot hold many
# parsed copies in memory at once (a float in a parsed JSON list costs some 30 bytes; in the body, 4).
_JSON_PARSER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="json-parse")


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def json_body_limit(max_body_bytes: int, max_json_body_bytes: int) -> int:
    """JSON costs far more to parse than its size: it has its own, smaller cap."""
    return min(max_body_bytes, max_json_body_bytes)


def body_limit(content_type: str, max_body_bytes: int, max_json_body_bytes: int) -> int:
    if media_type(content_type) == JSON_MEDIA_TYPE:
        return json_body_limit(max_body_bytes, max_json_body_bytes)
    return max_body_bytes


async def parse_json(parse: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """parse(*args), which parses a JSON document, off the event loop and at most two at a time per process."""
    return await asyncio.get_running_loop().run_in_executor(_JSON_PARSER, functools.partial(
        _refusal_without_frames, parse, *args, **kwargs))


def _refusal_without_frames(parse: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """parse's refusal, without the frames (and the parsed document in their locals) it was raised from: it waits
    for the event loop, and a stalled loop would keep every refused document in memory meanwhile."""
    try:
        return parse(*args, **kwargs)
    except (ApiError, WireFormatError) as e:
        e.__context__ = None
        raise e.with_traceback(None) from None


async def decode_body(body: bytes, content_type: str) -> np.ndarray:
    """decode_inputs, with JSON parsed by parse_json."""
    if media_type(content_type) != JSON_MEDIA_TYPE:
        return decode_inputs(body, content_type)
    return await parse_json(decode_inputs, body, content_type)


def validation_reason(e: ValidationError) -> str:
    """Where a body first fails its model, and why (too deep a nesting is a json_invalid error of the body)."""
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


async def read_capped_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing (413) as soon as it exceeds limit, whether or not Content-Length is honest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_inputs(body: bytes, content_type: str) -> np.ndarray:
    """The batch as sent, not yet checked or scaled; WireFormatError if malformed, 415 for another media type."""
    media = media_type(content_type)
    if media == NPY_MEDIA_TYPE:
        return decode_npy(body)
    if media == JSON_MEDIA_TYPE:
        try:
            request = PredictRequest.model_validate_json(body)
        except ValidationError as e:
            raise WireFormatError("malformed_json", validation_reason(e)) from None
        try:
            return np.asarray(request.inputs, dtype=np.float32)
        except ValueError:
            raise WireFormatError("wrong_shape", "inputs are ragged: every image must have the same shape") from None
    raise ApiError(415, "unsupported_media_type",
                   f"Content-Type {media or '(none)'} is not supported; send {NPY_MEDIA_TYPE} or {JSON_MEDIA_TYPE}")
