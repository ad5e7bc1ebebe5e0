"""The tensor wire format between attacker and oracle.

Binary: a NumPy `.npy` body (media type application/x-npy), float32 in [0, 1] or uint8 in 0..255,
shape (batch, C, H, W). JSON: {"inputs": nested lists of floats in [0, 1]}. Labels come back as JSON
{"labels": [...]} or, when the client accepts application/x-npy, as an int64 `.npy`.
"""

from __future__ import annotations

import io
import struct
from functools import lru_cache

import numpy as np

NPY_MEDIA_TYPE = "application/x-npy"
JSON_MEDIA_TYPE = "application/json"


class WireFormatError(ValueError):
    """The body is not a well-formed tensor; `code` names the problem for machines."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _header_end(body: bytes) -> int | None:
    """Where a version 1.0 or 2.0 .npy header ends (its data begins), or None for anything else."""
    if len(body) < 12 or body[:6] != b"\x93NUMPY" or body[6:8] not in (b"\x01\x00", b"\x02\x00"):
        return None
    if body[6] == 1:
        return 10 + int(struct.unpack("<H", body[8:10])[0])
    return 12 + int(struct.unpack("<I", body[8:12])[0])


@lru_cache(maxsize=256)
def _parsed_header(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype] | None:
    """A .npy header's shape, order and dtype, parsed by numpy's own reader; remembered, since a client sends the
    same header request after request (numpy parses it with `ast.literal_eval`: ~5% of a single input's cost)."""
    stream = io.BytesIO(header)
    try:
        version = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(stream)
    except (ValueError, OSError, EOFError):
        return None  # np.load says what is wrong
    if stream.tell() != len(header) or dtype.hasobject or not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    return tuple(shape), bool(fortran), dtype


def decode_npy(body: bytes) -> np.ndarray:
    end = _header_end(body)
    if end is None or end > len(body):
        return _load(body)  # np.load reads it or says why not
    parsed = _parsed_header(body[:end])
    if parsed is None:
        return _load(body)
    shape, fortran, dtype = parsed
    # A header may declare 2^40 elements in a few bytes: refused before anything is allocated for it.
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    carried = len(body) - end
    if declared != carried:
        raise WireFormatError("malformed_npy", f"the .npy header declares shape {shape} of {dtype} "
                                               f"({declared:,} bytes) but the body carries {carried:,} bytes")
    flat = np.frombuffer(body, dtype, count=declared // dtype.itemsize if dtype.itemsize else 0, offset=end)
    return flat.reshape(shape, order="F" if fortran else "C").copy()  # writable, like np.load's


def _load(body: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except MemoryError:
        raise WireFormatError("malformed_npy", "the .npy array is too large to decode") from None
    except (ValueError, OSError, EOFError) as e:  # object arrays without pickle, bad headers, truncated data
        raise WireFormatError("malformed_npy", f"body is not a valid .npy array: {e}") from None
    if not isinstance(array, np.ndarray):
        raise WireFormatError("malformed_npy", "body is an .npz archive, not a single .npy array")
    return array


def to_unit_interval(array: np.ndarray) -> np.ndarray:
    """Validate dtype, finiteness and range; return float32 in [0, 1].

    uint8 is scaled by 1/255; float32 must already lie in [0, 1]; anything else is refused rather than
    silently cast, so a client learns its encoding is off.
    """
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype != np.float32:
        raise WireFormatError(
            "unsupported_dtype", f"inputs have dtype {array.dtype}; send float32 in [0, 1] or uint8 in 0..255"
        )
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise WireFormatError("non_finite", f"inputs contain {bad} NaN or infinite value(s)")
    low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
    if low < 0.0 or high > 1.0:
        raise WireFormatError("out_of_range", f"inputs must lie in [0, 1]; found values in [{low:g}, {high:g}]")
    return array


def check_shape(array: np.ndarray, input_shape: tuple[int, ...], max_batch: int) -> None:
    expected = "(batch, " + ", ".join(str(d) for d in input_shape) + ")"
    if array.ndim != len(input_shape) + 1 or tuple(array.shape[1:]) != tuple(input_shape):
        raise WireFormatError("wrong_shape", f"inputs have shape {tuple(array.shape)}; this model expects {expected}")
    if array.shape[0] == 0:
        raise WireFormatError("empty_batch", "the batch is empty; send at least one input")
    if array.shape[0] > max_batch:
        raise WireFormatError("batch_too_large", f"batch of {array.shape[0]} inputs exceeds the limit of {max_batch}")
