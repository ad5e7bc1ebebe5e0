"""How inputs go on the wire (layout, value scale) and the model's shape; credentials: keyring.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bbrange.attacker.campaigns.errors import OracleProtocolError
from bbrange.attacker.campaigns.spec.target import Target


@dataclass(frozen=True)
class RemoteModel:
    name: str
    input_shape: tuple[int, int, int]
    num_classes: int  # the endpoint's own labels, 0..num_classes-1
    card: dict[str, Any] | None = None  # what the endpoint's metadata said, where it has any (for reports)


def to_wire(batch: np.ndarray, target: Target, *, flat: bool | None = None) -> np.ndarray:
    """A batch in the layout and value scale the endpoint takes; each input one vector of C·H·W values (in
    the layout's order) where the model takes flat inputs (`flat`, else the spec's `input_flat`)."""
    x = batch.transpose(0, 2, 3, 1) if target.input_layout == "nhwc" else batch
    if target.input_flat if flat is None else flat:
        x = x.reshape(len(x), -1)
    if target.input_scale == "byte":
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x, dtype=np.float32)


def chw(shape: list[int] | tuple[int, ...], target: Target) -> tuple[int, int, int]:
    """(C, H, W) of an input shape given in the endpoint's layout (without the batch axis)."""
    if len(shape) != 3:
        raise OracleProtocolError(f"model {target.model!r} takes inputs of shape {list(shape)}, not images (3 axes)")
    c, h, w = (shape[2], shape[0], shape[1]) if target.input_layout == "nhwc" else shape
    return int(c), int(h), int(w)
