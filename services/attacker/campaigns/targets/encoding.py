"""How inputs and credentials go on the wire: layout, value scale, auth headers, and the model's shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from bbrange.attacker.campaigns.errors import OracleProtocolError
from bbrange.attacker.campaigns.spec.target import BasicAuth, BearerAuth, HeaderAuth, Target


@dataclass(frozen=True)
class RemoteModel:
    name: str
    input_shape: tuple[int, int, int]
    num_classes: int  # the endpoint's own labels, 0..num_classes-1
    card: dict[str, Any] | None = None  # what the endpoint's metadata said, where it has any (for reports)


def auth_of(target: Target) -> tuple[dict[str, str], httpx.Auth | None]:
    auth = target.auth
    if target.api_key is not None:
        return {"Authorization": f"Bearer {target.api_key.get_secret_value()}"}, None
    if isinstance(auth, BearerAuth):
        return {"Authorization": f"Bearer {auth.token.get_secret_value()}"}, None
    if isinstance(auth, HeaderAuth):
        return {auth.name: auth.value.get_secret_value()}, None
    if isinstance(auth, BasicAuth):
        return {}, httpx.BasicAuth(auth.username, auth.password.get_secret_value())
    return {}, None


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
