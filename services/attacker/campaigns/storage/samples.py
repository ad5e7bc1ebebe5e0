"""Durable adversarial samples: one uncompressed .npz per campaign on a directory the API and the
workers share, written to a temporary file and renamed into place, so a reader sees either no samples or
all of them, and a worker killed while saving leaves nothing half-written behind.

Files rather than Redis: the exact float arrays of a full MNIST evaluation are ~60 MB per campaign,
which belongs on disk (or a mounted volume), not in the memory of the database that holds state.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np

from bbrange.attacker.campaigns.storage.user_data import Uploads

SAMPLES_FILE = "samples.npz"
GRID_FILE = "samples.png"
UPLOAD_FILES = ("initial_set.npy", "evaluation_x.npy", "evaluation_y.npy")  # the order of Uploads' fields


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
    # label_after is -1 where a query attack kept only that the oracle's label was adversarial
    success: np.ndarray  # bool
    l0: np.ndarray  # float64: fraction of features changed
    l2: np.ndarray
    linf: np.ndarray
    queries: np.ndarray | None = None  # int64: a query attack's queries per sample (None: a transfer attack)

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
        """Where an uploaded initial set is kept."""
        return self.directory(cid) / UPLOAD_FILES[0]

    def save(self, cid: str, samples: SampleSet) -> Path:
        arrays = {f.name: getattr(samples, f.name) for f in fields(SampleSet) if getattr(samples, f.name) is not None}
        return self._atomic_write(self.samples_path(cid), lambda out: np.savez(out, **arrays))

    def save_grid(self, cid: str, png: bytes) -> Path:
        return self._atomic_write(self.grid_path(cid), lambda f: f.write(png))

    def load(self, cid: str) -> SampleSet | None:
        path = self.samples_path(cid)
        if not path.exists():
            return None
        return _load_cached(path, path.stat().st_mtime_ns)

    def save_uploads(self, cid: str, uploads: Uploads) -> None:
        """A campaign's decoded uploads, one binary .npy per array as sent (uint8 stays uint8: a quarter of
        float32), until the campaign ends; the spec in Redis names them by shape only."""
        for name, array in _upload_arrays(uploads).items():
            if array is not None:
                self._atomic_write(self.directory(cid) / name, functools.partial(_save_npy, array=array))

    def load_uploads(self, cid: str) -> Uploads:
        """The uploads kept for this campaign, as sent (None for what it did not upload)."""
        paths = [self.directory(cid) / name for name in UPLOAD_FILES]
        x0, x_eval, y_eval = (np.load(p, allow_pickle=False) if p.exists() else None for p in paths)
        return Uploads(x0=x0, x_eval=x_eval, y_eval=y_eval)

    def remove_upload(self, cid: str) -> None:
        """An ended campaign's uploads are of no more use: they go (its samples stay)."""
        for name in UPLOAD_FILES:
            (self.directory(cid) / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory(cid).rmdir()  # only if nothing else is there

    def remove(self, cid: str) -> None:
        """Everything kept for a campaign whose record is deleted."""
        shutil.rmtree(self.directory(cid), ignore_errors=True)

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


def _save_npy(out: IO[bytes], array: np.ndarray) -> None:
    np.save(out, array, allow_pickle=False)


def _upload_arrays(uploads: Uploads) -> dict[str, np.ndarray | None]:
    return dict(zip(UPLOAD_FILES, (uploads.x0, uploads.x_eval, uploads.y_eval), strict=True))


@lru_cache(maxsize=4)
def _load_cached(path: Path, mtime_ns: int) -> SampleSet:
    """Pages of one campaign's samples are read one after another: keep the last few sets in memory."""
    with np.load(path, allow_pickle=False) as npz:
        return SampleSet(**{f.name: npz[f.name] for f in fields(SampleSet) if f.name in npz.files})
