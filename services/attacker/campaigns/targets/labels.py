"""What an answer says each input's label is, whatever the endpoint's way of saying it.

Endpoints answer labels in many shapes: integers, one-element lists (TF Serving's output of shape [None, 1]),
floats holding whole numbers (a V2 output typed FP32), strings ("7"); or one score vector per input, whose
argmax is the label. The shape decides, never a guess: one value per input is a label and must be a whole
number; num_classes values per input are scores; anything else (a value per input that is not a whole
number, a count that is not the inputs', scores of another length) fails the campaign with what was received,
quoted and bounded.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import numpy as np

from bbrange.attacker.campaigns.errors import OracleProtocolError
from bbrange.attacker.campaigns.targets.refusals import clip

Expected = Literal["labels", "scores", "either"]
_INTEGER = re.compile(r"\s*[+-]?\d{1,18}\s*")
_SHOWN = 6  # values of an answer quoted in an error


def read_labels(values: Any, n: int, num_classes: int, expected: Expected = "either") -> np.ndarray:
    """One int64 label per input from `values` (nested lists or an array, first axis the inputs): labels where
    there is one value per input, the argmax where there are num_classes (scores). `expected` narrows it to
    one of the two where the protocol or the spec says which it is."""
    array = _numbers(values)
    if array.ndim == 0 or array.shape[0] != n:
        count = "a single value" if array.ndim == 0 else f"{array.shape[0]} entries"
        raise _unreadable(f"{count} for {n} inputs", array)
    per_input = int(np.prod(array.shape[1:], dtype=np.int64))
    if per_input == 1 and expected != "scores":
        flat = array.reshape(n)
        if flat.dtype.kind == "f" and not (np.isfinite(flat).all() and (flat == np.round(flat)).all()):
            raise _unreadable("one value per input that is not a whole number: neither a class id nor a score "
                              f"vector of {num_classes} values", array)
        return flat.astype(np.int64)
    if per_input == num_classes and expected != "labels":
        best: np.ndarray = array.reshape(n, num_classes).argmax(1)
        return best.astype(np.int64)
    wanted = {"labels": "one class id per input",
              "scores": f"one score vector of {num_classes} values per input",
              "either": f"one class id or one score vector of {num_classes} values per input"}[expected]
    raise _unreadable(f"{per_input} values per input where {wanted} was expected", array)


def _numbers(values: Any) -> np.ndarray:
    """The values as an integer or float array; class ids written as strings ("7") are read as integers."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nesting
        raise OracleProtocolError(f"the endpoint's answer is not one entry per input of one shape: "
                                  f"{_quote_json(values)}") from None
    if array.dtype.kind in "US":
        texts = array.astype(str)
        if not all(_INTEGER.fullmatch(t) for t in texts.reshape(-1)):
            raise _unreadable("text that is not class ids", array)
        return np.vectorize(int, otypes=[np.int64])(texts) if texts.size else texts.astype(np.int64)
    if array.dtype.kind not in "iuf":
        raise _unreadable("values that are neither numbers nor class ids written as text", array)
    return array


def _unreadable(why: str, array: np.ndarray) -> OracleProtocolError:
    return OracleProtocolError(f"the endpoint's answer cannot be read as labels: {why}; received {received(array)}")


def received(array: np.ndarray) -> str:
    """An answer as an error quotes it: its shape, type and first values, bounded."""
    first = [clip(repr(v), 24) for v in array.reshape(-1)[:_SHOWN].tolist()]
    more = ", …" if array.size > _SHOWN else ""
    return f"shape {list(array.shape)} of {array.dtype.name}, first values [{', '.join(first)}{more}]"


def _quote_json(values: Any) -> str:
    try:
        return clip(json.dumps(values, default=str), 160)
    except (TypeError, ValueError):
        return f"a {type(values).__name__}"
