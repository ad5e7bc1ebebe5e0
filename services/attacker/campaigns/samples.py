"""Durable adversarial samples: one uncompressed .npz per campaign on a directory the API and the
workers share, written to a temporary file and renamed into place, so a reader sees either no samples or
all of them, and a worker killed while saving leaves nothing half-written behind.

Files rather than Redis: the exact float arrays of a full MNIST evaluation are ~60 MB per campaign,
which belongs on disk (or a mounted volume), not in the memory of the database that holds state.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np

from bbrange.attacker.campaigns.user_data import to_unit

SAMPLES_FILE = "samples.npz"
GRID_FILE = "samples.png"
UPLOAD_FILE = "initial_set.npy"


@dataclass(frozen=True)
class SampleSet:
    """Arrays of one campaign, aligned by sample; `index` is the source image's index in its dataset split."""

    index: np.ndarray  # int64 (N,)
    x: np.ndarray  # float32 (N, C, H, W): the clean images
    x_adv: np.ndarray  # float32 (N, C, H, W)
    y_true: np.ndarray  # int64
    label_before: np.ndarray  # int64: the oracle's label of x
    label_after: np.ndarray  # int64: the oracle's label of x_adv
    target: np.ndarray  # int64: the JSMA target, -1 for untargeted attacks
    success: np.ndarray  # bool
    l0: np.ndarray  # float64: fraction of features changed
    l2: np.ndarray
    linf: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


class SampleStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def directory(self, cid: str) -> Path:
        return self.root / cid

    def samples_path(self, cid: str) -> Path:
        return self.directory(cid) / SAMPLES_FILE

    def grid_path(self, cid: str) -> Path:
        return self.directory(cid) / GRID_FILE

    def upload_path(self, cid: str) -> Path:
        return self.directory(cid) / UPLOAD_FILE

    def save(self, cid: str, samples: SampleSet) -> Path:
        arrays = {f.name: getattr(samples, f.name) for f in fields(SampleSet)}
        return self._atomic_write(self.samples_path(cid), lambda out: np.savez(out, **arrays))

    def save_grid(self, cid: str, png: bytes) -> Path:
        return self._atomic_write(self.grid_path(cid), lambda f: f.write(png))

    def load(self, cid: str) -> SampleSet | None:
        path = self.samples_path(cid)
        if not path.exists():
            return None
        return _load_cached(path, path.stat().st_mtime_ns)

    def save_upload_npy(self, cid: str, npy: bytes) -> Path:
        """The uploaded initial set as sent (uint8 stays uint8: a quarter of float32 on disk)."""
        return self._atomic_write(self.upload_path(cid), lambda f: f.write(npy))

    def load_upload(self, cid: str, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
        """The uploaded initial set as float32 in [0, 1] (float uploads are read in the domain's value range)."""
        return to_unit(np.asarray(np.load(self.upload_path(cid), allow_pickle=False)), value_range,
                       "the uploaded initial set")

    def remove_upload(self, cid: str) -> None:
        """An ended campaign's upload is of no more use: it goes (its samples stay)."""
        self.upload_path(cid).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory(cid).rmdir()  # only if nothing else is there

    def _atomic_write(self, dest: Path, write: Callable[[IO[bytes]], object]) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest


@lru_cache(maxsize=4)
def _load_cached(path: Path, mtime_ns: int) -> SampleSet:
    """Pages of one campaign's samples are read one after another: keep the last few sets in memory."""
    with np.load(path, allow_pickle=False) as npz:
        return SampleSet(**{f.name: npz[f.name] for f in fields(SampleSet)})
