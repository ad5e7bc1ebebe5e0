"""Images a campaign brings itself: `.npy`/`.npz` uploads (base64 in the spec) and `.npz` files on the data
volume an operator configured (BBRANGE_ATTACK_DATASETS_DIR). Read without pickle, checked for shape and
range, and scaled to float32 in [0, 1] like every image the engine sees."""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from pathlib import Path

import numpy as np

from bbrange.shared.wire import WireFormatError, decode_npy, to_unit_interval

MAX_IMAGES = 100_000


class UserDataError(ValueError):
    """The images are unusable; the message says why."""


def _raw(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UserDataError(f"{what} is not valid base64") from None


def to_unit(x: np.ndarray, value_range: tuple[float, float] | None, what: str) -> np.ndarray:
    """float32 in [0, 1]: uint8 arrays are read as 0..255, float arrays as `value_range`; with no range, only
    the shape is checked (the range is checked once the spec's domain is known)."""
    if value_range is None:
        if x.ndim != 4 or x.shape[0] == 0 or x.shape[0] > MAX_IMAGES:
            raise UserDataError(f"{what} must be a (N, C, H, W) array of 1..{MAX_IMAGES:,} images, got shape {x.shape}")
        return x
    if x.dtype != np.uint8 and np.issubdtype(x.dtype, np.floating) and value_range != (0.0, 1.0):
        lo, hi = value_range
        x = (x.astype(np.float64) - lo) / (hi - lo)
    try:
        unit = to_unit_interval(np.asarray(x, dtype=x.dtype if x.dtype == np.uint8 else np.float32))
    except WireFormatError as e:
        raise UserDataError(f"{what}: {e.message}") from None
    if unit.ndim != 4 or unit.shape[0] == 0:
        raise UserDataError(f"{what} must be a non-empty (N, C, H, W) array, got shape {unit.shape}")
    if unit.shape[0] > MAX_IMAGES:
        raise UserDataError(f"{what} has {unit.shape[0]} images; at most {MAX_IMAGES:,} are accepted")
    return unit


def decode_npy_upload(value: str, value_range: tuple[float, float] | None = (0.0, 1.0)) -> np.ndarray:
    try:
        array = decode_npy(_raw(value, "npy_base64"))
    except WireFormatError as e:
        raise UserDataError(f"the uploaded images are unusable: {e.message}") from None
    return to_unit(array, value_range, "the uploaded images")


def read_npz(raw: bytes | Path, what: str, value_range: tuple[float, float] | None,
             labelled: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(x in [0, 1], y) from an .npz holding `x` (and `y` when labelled)."""
    try:
        with np.load(io.BytesIO(raw) if isinstance(raw, bytes) else raw, allow_pickle=False) as npz:
            if "x" not in npz or (labelled and "y" not in npz):
                raise UserDataError(f"{what} must hold an array 'x'" + (" and labels 'y'" if labelled else ""))
            x, y = npz["x"], npz.get("y")
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        if isinstance(e, UserDataError):
            raise
        raise UserDataError(f"{what} is not a readable .npz without pickled objects ({type(e).__name__})") from None
    x = to_unit(x, value_range, what)
    if y is not None:
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise UserDataError(f"{what}: 'y' must hold one integer label per image ({len(x)}), got {y.dtype} "
                                f"{y.shape}")
        y = y.astype(np.int64)
    return x, y


def decode_npz_upload(value: str, value_range: tuple[float, float] | None,
                      labelled: bool) -> tuple[np.ndarray, np.ndarray | None]:
    return read_npz(_raw(value, "npz_base64"), "the uploaded .npz", value_range, labelled)


def volume_file(datasets_dir: Path | None, name: str) -> Path:
    """The .npz `name` on the operator's data volume; never a path outside it."""
    if datasets_dir is None:
        raise UserDataError("this service has no data volume for campaign files (BBRANGE_ATTACK_DATASETS_DIR)")
    root = datasets_dir.resolve()
    path = (root / name).resolve()
    if path.parent != root or path.suffix != ".npz":
        raise UserDataError(f"{name!r} is not an .npz file name on the data volume")
    if not path.is_file():
        raise UserDataError(f"no file {name!r} on the data volume")
    return path
