"""The tensor wire format between attacker and oracle.

Binary: a NumPy `.npy` body (media type application/x-npy), float32 in [0, 1] or uint8 in 0..255,
shape (batch, C, H, W). JSON: {"inputs": nested lists of floats in [0, 1]}. Labels come back as JSON
{"labels": [...]} or, when the client accepts application/x-npy, as an int64 `.npy`.
"""

from __future__ import annotations

import io

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


def _check_declared_size(body: bytes) -> None:
    """Refuse a .npy whose header declares more data than the body carries, before anything is allocated for
    it (a header may declare 2^40 elements in a few bytes)."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            return  # np.load says what is wrong with other versions
    except (ValueError, OSError, EOFError):
        return  # not a .npy header: np.load says why
    if dtype.hasobject or not all(isinstance(d, int) and d >= 0 for d in shape):
        return
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    carried = len(body) - stream.tell()
    if declared != carried:
        raise WireFormatError("malformed_npy", f"the .npy header declares shape {tuple(shape)} of {dtype} "
                                               f"({declared:,} bytes) but the body carries {carried:,} bytes")


def decode_npy(body: bytes) -> np.ndarray:
    _check_declared_size(body)
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except MemoryError:
        raise WireFormatError("malformed_npy", "the .npy array is too large to decode") from None
    except ValueError as e:  # object arrays without pickle, bad headers, truncated data
        raise WireFormatError("malformed_npy", f"body is not a valid .npy array: {e}") from None
    except (OSError, EOFError) as e:
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
