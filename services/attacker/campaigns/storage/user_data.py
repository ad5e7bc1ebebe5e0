"""Images a campaign brings itself: `.npy`/`.npz` uploads (base64 in the spec) and `.npz` files on the data
volume an operator configured (BBRANGE_ATTACK_DATASETS_DIR). Read without pickle, checked for shape and
range, and scaled to float32 in [0, 1] like every image the engine sees.

An upload is bounded by its decoded size before anything is inflated: a `.npz` by the sizes its zip directory
declares for `x` and `y` and by the shapes their `.npy` headers declare (a 300-byte header may declare
terabytes, a megabyte of deflated zeros a gigabyte), and no more than a member declares is ever read."""

from __future__ import annotations

import base64
import binascii
import io
import lzma
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from bbrange.attacker.campaigns.errors import InvalidCampaign
from bbrange.shared.wire import WireFormatError, decode_npy, to_unit_interval

MAX_IMAGES = 100_000
MAX_NPZ_MEMBERS = 16  # x, y and a few extras a tool may add; a directory of thousands is not an image set
_MAX_HEADER_BYTES = 10_000  # numpy's own default for trusted files
_UNREADABLE = (OSError, ValueError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error,
               lzma.LZMAError)


class UserDataError(InvalidCampaign):
    """The images are unusable; the message says why (a campaign they reach ends invalid_campaign)."""


class UploadTooLarge(UserDataError):
    """The images decode to more bytes than this service accepts."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} decodes to {size:,} bytes; this service accepts at most {limit:,} "
                         "(BBRANGE_ATTACK_MAX_UPLOAD_BYTES)")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Uploads:
    """A spec's uploaded images, decoded once by the API and kept as arrays (their dtype as sent) until the
    campaign ends; None where the spec uploads nothing."""

    x0: np.ndarray | None = None
    x_eval: np.ndarray | None = None
    y_eval: np.ndarray | None = None


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


def check_range(x: np.ndarray, value_range: tuple[float, float], what: str) -> None:
    """Refuse images outside the domain's value range (uint8 images are 0..255 whatever the range)."""
    if x.dtype != np.uint8:
        to_unit(x, value_range, what)


def decode_npy_upload(value: str, max_bytes: int) -> np.ndarray:
    """The array of a base64 `.npy` (its header must declare exactly the data it carries), shape-checked."""
    raw = _raw(value, "npy_base64")
    if len(raw) > max_bytes:
        raise UploadTooLarge("the uploaded initial set", len(raw), max_bytes)
    try:
        array = decode_npy(raw)
    except WireFormatError as e:
        raise UserDataError(f"the uploaded images are unusable: {e.message}") from None
    return to_unit(array, None, "the uploaded images")


def _read_member(npz: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> np.ndarray:
    """One `.npy` member, refused before any allocation unless its header's shape fits the size the zip
    directory declares for it; never more than that size is decompressed."""
    name = info.filename.removesuffix(".npy")
    with npz.open(info) as member:
        version = np.lib.format.read_magic(member)
        header = _header_reader(version)
        shape, fortran, dtype = header(member, max_header_size=_MAX_HEADER_BYTES)
        if dtype.hasobject:
            raise UserDataError(f"{what}: {name!r} holds Python objects (pickles are not read)")
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        room = info.file_size - member.tell()
        if declared != room:
            raise UserDataError(f"{what}: the header of {name!r} declares shape {tuple(shape)} of {dtype} "
                                f"({declared:,} bytes) but the archive holds {room:,} bytes for it")
        data = _read_exactly(member, declared)
    array: np.ndarray = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array


def _header_reader(version: tuple[int, int]) -> Callable[..., tuple[tuple[int, ...], bool, np.dtype[Any]]]:
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"unsupported .npy version {version}")
    return readers[version]


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError(f"{size:,} bytes declared, {len(data):,} present")
    return data


def read_npz(raw: bytes | Path, what: str, value_range: tuple[float, float] | None, labelled: bool,
             max_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(x in [0, 1], y) from an .npz holding `x` (and `y` when labelled); with `max_bytes`, refused with
    UploadTooLarge when x and y would decode to more than that."""
    wanted = ["x", "y"] if labelled else ["x"]
    try:
        with zipfile.ZipFile(io.BytesIO(raw) if isinstance(raw, bytes) else raw) as npz:
            infos = npz.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise UserDataError(f"{what} holds {len(infos):,} arrays; at most {MAX_NPZ_MEMBERS} are read")
            members = {i.filename.removesuffix(".npy"): i for i in infos if i.filename.endswith(".npy")}
            if any(name not in members for name in wanted):
                raise UserDataError(f"{what} must hold an array 'x'" + (" and labels 'y'" if labelled else ""))
            declared = sum(members[name].file_size for name in wanted)
            if max_bytes is not None and declared > max_bytes:
                raise UploadTooLarge(what, declared, max_bytes)
            arrays = {name: _read_member(npz, members[name], what) for name in wanted}
    except _UNREADABLE as e:
        if isinstance(e, UserDataError):
            raise
        raise UserDataError(f"{what} is not a readable .npz without pickled objects ({type(e).__name__}: "
                            f"{str(e)[:200]})") from None
    x, y = to_unit(arrays["x"], value_range, what), arrays.get("y")
    if y is not None:
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise UserDataError(f"{what}: 'y' must hold one integer label per image ({len(x)}), got {y.dtype} "
                                f"{y.shape}")
        y = y.astype(np.int64)
    return x, y


def decode_npz_upload(value: str, max_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(x as sent, y as int64) of a base64 labelled `.npz`, shape-checked, at most max_bytes decoded."""
    x, y = read_npz(_raw(value, "npz_base64"), "the uploaded .npz", None, labelled=True, max_bytes=max_bytes)
    assert y is not None
    return x, y


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
