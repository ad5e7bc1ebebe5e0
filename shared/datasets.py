"""MNIST and GTSRB loaders: local files first, verified downloads from public mirrors otherwise.

Every loader returns float32 images in [0, 1], NCHW, and int64 labels.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import numpy as np

log = logging.getLogger(__name__)

DATA_DIR_ENV = "BBRANGE_DATA_DIR"
DEFAULT_DATA_DIR = Path.home() / ".cache" / "bbrange" / "datasets"

Split = Literal["train", "test"]
DATASETS: tuple[str, ...] = ("mnist", "gtsrb")


class DatasetUnavailable(RuntimeError):
    """The dataset is neither on disk nor fetchable; the message names what was expected where."""


class ChecksumMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class Dataset:
    name: str
    x: np.ndarray  # float32, (N, C, H, W), [0, 1]
    y: np.ndarray  # int64, (N,)
    num_classes: int
    class_names: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return c, h, w

    def __len__(self) -> int:
        return len(self.y)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The explicit argument wins, then $BBRANGE_DATA_DIR, then the per-user cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_DIR


# --------------------------------------------------------------------------- checksums & fetching

MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

GTSRB_NPZ = "gtsrb32.npz"
GTSRB_NPZ_SHA256 = "15d5da13d7dd1753df3638a94ca038f80797f4438b4b90d3164c9bfcbce6b17a"
# The official release archives (INI benchmark site), from which gtsrb32.npz is built.
GTSRB_ARCHIVE_BASE = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
# md5 of the test archives as used by torchvision; no checksum is published for the training
# archive, so it is checked by content instead (39,209 images in 43 class folders).
GTSRB_ARCHIVES: dict[str, str | None] = {
    "GTSRB_Final_Training_Images.zip": None,
    "GTSRB_Final_Test_Images.zip": "c7e4e6327067d32654124b0fe9e82185",
    "GTSRB_Final_Test_GT.zip": "fe31e9c9270bbcd7b84b7f21a9d9d9e5",
}


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, expected: str | None, algorithm: str = "sha256") -> None:
    """Stream url into dest atomically; a wrong digest leaves nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.new(algorithm)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as r:
            r.raise_for_status()
            for chunk in r.iter_bytes(1 << 20):
                h.update(chunk)
                out.write(chunk)
        if expected is not None and h.hexdigest() != expected:
            raise ChecksumMismatch(f"{url}: {algorithm} {h.hexdigest()} != expected {expected}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _fetch_from_mirrors(name: str, dest: Path, sha256: str, mirrors: tuple[str, ...]) -> None:
    errors: list[str] = []
    for base in mirrors:
        try:
            log.info("downloading %s from %s", name, base)
            _download(base + name, dest, sha256)
            return
        except (httpx.HTTPError, ChecksumMismatch, OSError) as e:
            errors.append(f"{base}{name}: {e}")
    raise DatasetUnavailable(
        f"{name} is not in {dest.parent} and could not be downloaded:\n  " + "\n  ".join(errors)
    )


def _ensure_verified(path: Path, sha256: str, fetch: Callable[[], None] | None, download: bool) -> Path:
    if path.exists():
        digest = file_digest(path)
        if digest != sha256:
            raise ChecksumMismatch(f"{path} has sha256 {digest}, expected {sha256}; remove it to re-fetch")
        return path
    if not download or fetch is None:
        raise DatasetUnavailable(f"missing {path} (downloads disabled)")
    fetch()
    return path


# --------------------------------------------------------------------------- MNIST


def parse_idx(raw: bytes) -> np.ndarray:
    """Parse an IDX file (uint8 payload): big-endian magic 0x0000080{ndim}, then ndim uint32 sizes."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise ValueError(f"IDX payload has {len(raw) - offset} bytes, header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(tuple(dims))


def _mnist_files(root: Path, download: bool) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    missing = [n for n in MNIST_FILES if not (root / n).exists()]
    if missing and not download:
        raise DatasetUnavailable(
            f"MNIST not found in {root}: expected {', '.join(MNIST_FILES)} "
            f"(missing {', '.join(missing)}); set ${DATA_DIR_ENV} or --data-dir, or allow downloads"
        )
    for name, sha in MNIST_FILES.items():
        dest = root / name
        paths[name] = _ensure_verified(
            dest, sha, functools.partial(_fetch_from_mirrors, name, dest, sha, MNIST_MIRRORS), download
        )
    return paths


def load_mnist(split: Split, data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Dataset:
    root = resolve_data_dir(data_dir) / "mnist"
    files = _mnist_files(root, download)
    prefix = "train" if split == "train" else "t10k"
    images = parse_idx(gzip.decompress(files[f"{prefix}-images-idx3-ubyte.gz"].read_bytes()))
    labels = parse_idx(gzip.decompress(files[f"{prefix}-labels-idx1-ubyte.gz"].read_bytes()))
    x = (images.astype(np.float32) / 255.0).reshape(len(images), 1, *images.shape[1:])
    return Dataset("mnist", x, labels.astype(np.int64), 10, tuple(str(i) for i in range(10)))


# --------------------------------------------------------------------------- GTSRB

GTSRB_CLASS_NAMES: tuple[str, ...] = (
    "speed limit 20", "speed limit 30", "speed limit 50", "speed limit 60", "speed limit 70",
    "speed limit 80", "end of speed limit 80", "speed limit 100", "speed limit 120", "no passing",
    "no passing for vehicles over 3.5t", "right-of-way at next intersection", "priority road", "yield",
    "stop", "no vehicles", "vehicles over 3.5t prohibited", "no entry", "general caution",
    "dangerous curve left", "dangerous curve right", "double curve", "bumpy road", "slippery road",
    "road narrows on the right", "road work", "traffic signals", "pedestrians", "children crossing",
    "bicycles crossing", "beware of ice/snow", "wild animals crossing", "end of all speed and passing limits",
    "turn right ahead", "turn left ahead", "ahead only", "go straight or right", "go straight or left",
    "keep right", "keep left", "roundabout mandatory", "end of no passing",
    "end of no passing by vehicles over 3.5t",
)


def build_gtsrb_npz(archive_dir: Path, dest: Path) -> None:
    """Build gtsrb32.npz from the three official archives: whole images, bilinear to 32x32, RGB.

    Training order is class folder then file name; test order is file name, labels from GT-final_test.csv.
    """
    from PIL import Image

    def to_array(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.uint8)

    x_train: list[np.ndarray] = []
    y_train: list[int] = []
    with zipfile.ZipFile(archive_dir / "GTSRB_Final_Training_Images.zip") as z:
        names = sorted(n for n in z.namelist() if n.endswith(".ppm"))
        for n in names:  # .../Images/000NN/xxxxx_yyyyy.ppm
            x_train.append(to_array(z.read(n)))
            y_train.append(int(Path(n).parent.name))
    with zipfile.ZipFile(archive_dir / "GTSRB_Final_Test_GT.zip") as z:
        csv = z.read(next(n for n in z.namelist() if n.endswith(".csv"))).decode()
    test_labels = {
        row.split(";")[0]: int(row.split(";")[7]) for row in csv.splitlines()[1:] if row.strip()
    }
    x_test: list[np.ndarray] = []
    y_test: list[int] = []
    with zipfile.ZipFile(archive_dir / "GTSRB_Final_Test_Images.zip") as z:
        names = sorted(n for n in z.namelist() if n.endswith(".ppm"))
        for n in names:
            x_test.append(to_array(z.read(n)))
            y_test.append(test_labels[Path(n).name])
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        dest,
        x_train=np.stack(x_train), y_train=np.asarray(y_train, dtype=np.int64),
        x_test=np.stack(x_test), y_test=np.asarray(y_test, dtype=np.int64),
    )


def _fetch_gtsrb(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        for name, md5 in GTSRB_ARCHIVES.items():
            try:
                _download(GTSRB_ARCHIVE_BASE + name, tmp_dir / name, md5, algorithm="md5")
            except (httpx.HTTPError, ChecksumMismatch, OSError) as e:
                raise DatasetUnavailable(
                    f"{GTSRB_NPZ} is not in {dest.parent} and {name} could not be fetched: {e}") from e
        built = tmp_dir / GTSRB_NPZ
        build_gtsrb_npz(tmp_dir, built)
        # Resampling can differ by a rounding step between Pillow releases, so a rebuilt file is
        # checked structurally; the shipped file is checked against its published sha256.
        with np.load(built) as z:
            if (
                z["x_train"].shape != (39209, 32, 32, 3)
                or z["x_test"].shape != (12630, 32, 32, 3)
                or set(np.unique(z["y_train"]).tolist()) != set(range(43))
            ):
                raise DatasetUnavailable(f"rebuilt {GTSRB_NPZ} does not have GTSRB's shapes and classes")
        shutil.move(str(built), dest)


def load_gtsrb(split: Split, data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Dataset:
    root = resolve_data_dir(data_dir) / "gtsrb"
    path = root / GTSRB_NPZ
    if not path.exists():
        if not download:
            raise DatasetUnavailable(
                f"GTSRB not found: expected {path}; set ${DATA_DIR_ENV} or --data-dir, or allow downloads"
            )
        _fetch_gtsrb(path)
    elif file_digest(path) != GTSRB_NPZ_SHA256:
        log.warning("%s does not match the published sha256 (a local rebuild?)", path)
    with np.load(path, allow_pickle=False) as z:
        images = z[f"x_{split}"]
        labels = z[f"y_{split}"]
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    return Dataset("gtsrb", x, labels.astype(np.int64), 43, GTSRB_CLASS_NAMES)


LOADERS: dict[str, Callable[..., Dataset]] = {"mnist": load_mnist, "gtsrb": load_gtsrb}


def load_dataset(
    name: str, split: Split, data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> Dataset:
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
    return loader(split, data_dir, download)
