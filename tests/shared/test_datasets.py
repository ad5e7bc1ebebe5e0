"""Dataset loaders: local files, verified downloads from mirrors, and clear errors when neither works."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from bbrange.shared import datasets
from bbrange.shared.datasets import ChecksumMismatch, DatasetUnavailable, load_dataset, parse_idx


def test_mnist_from_the_canonical_idx_files(data_dir):
    train = load_dataset("mnist", "train", data_dir, download=False)
    test = load_dataset("mnist", "test", data_dir, download=False)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    assert test.y[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(train.y).tolist()[:2] == [5923, 6742]


def test_gtsrb_from_the_npz(data_dir):
    test = load_dataset("gtsrb", "test", data_dir, download=False)
    assert test.x.shape == (12630, 3, 32, 32) and test.num_classes == 43
    assert test.x.min() >= 0.0 and test.x.max() <= 1.0 and test.x.dtype == np.float32
    assert set(np.unique(test.y)) == set(range(43))
    assert test.class_names[14] == "stop"


def test_data_dir_from_the_environment(monkeypatch, data_dir):
    monkeypatch.setenv("BBRANGE_DATA_DIR", str(data_dir))
    assert datasets.resolve_data_dir() == data_dir
    assert datasets.resolve_data_dir("/elsewhere") == Path("/elsewhere")


def test_missing_dataset_names_directory_and_files(tmp_path):
    with pytest.raises(DatasetUnavailable) as e:
        load_dataset("mnist", "test", tmp_path, download=False)
    message = str(e.value)
    assert str(tmp_path / "mnist") in message and "t10k-images-idx3-ubyte.gz" in message
    with pytest.raises(DatasetUnavailable, match="gtsrb32.npz"):
        load_dataset("gtsrb", "test", tmp_path, download=False)
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar", "test", tmp_path)


def test_corrupted_local_file_is_detected(tmp_path, data_dir):
    shutil.copytree(data_dir / "mnist", tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").chmod(0o644)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\0"))
    with pytest.raises(ChecksumMismatch, match="t10k-labels"):
        load_dataset("mnist", "test", tmp_path)


def test_parse_idx_rejects_bad_headers():
    with pytest.raises(ValueError, match="not an IDX"):
        parse_idx(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="payload"):
        parse_idx(b"\0\0\x08\x01\0\0\0\x05abc")
    assert parse_idx(b"\0\0\x08\x02\0\0\0\x01\0\0\0\x02\x07\x09").tolist() == [[7, 9]]


@pytest.fixture
def mirrors(tmp_path, data_dir):
    """Two loopback mirrors: the first serves a corrupted file set, the second the real one."""
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in datasets.MNIST_FILES:
        (bad / name).write_bytes(b"not mnist")
    servers = []
    for root in (bad, data_dir / "mnist"):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *a: None  # type: ignore[method-assign]
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield tuple(f"http://127.0.0.1:{s.server_address[1]}/" for s in servers)
    for s in servers:
        s.shutdown()
        s.server_close()


def test_download_verifies_checksums_and_falls_back_to_the_next_mirror(tmp_path, mirrors, monkeypatch):
    bad, good = mirrors
    target = tmp_path / "fresh"
    monkeypatch.setattr(datasets, "MNIST_MIRRORS", (bad, good))
    test = load_dataset("mnist", "test", target, download=True)
    assert test.x.shape == (10000, 1, 28, 28)
    for name, sha in datasets.MNIST_FILES.items():
        assert datasets.file_digest(target / "mnist" / name) == sha
    assert not list((target / "mnist").glob("*.part")), "failed downloads leave nothing behind"


def test_download_from_only_bad_mirrors_fails_clearly(tmp_path, mirrors, monkeypatch):
    monkeypatch.setattr(datasets, "MNIST_MIRRORS", (mirrors[0],))
    with pytest.raises(DatasetUnavailable, match="sha256"):
        load_dataset("mnist", "test", tmp_path, download=True)
    assert not (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_mnist_batches_have_the_standard_strides(data_dir):
    # A stride of 0 on the channel axis (what x[:, None] makes) sends torch down other kernels; see as_batch.
    test = load_dataset("mnist", "test", data_dir, download=False)
    assert test.x.strides == (784 * 4, 784 * 4, 28 * 4, 4)
