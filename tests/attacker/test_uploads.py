"""Uploaded evaluation sets through the real API and worker processes: a zip bomb is refused by the size it
declares, and an accepted upload reaches the worker as the arrays the API decoded, never as base64 in Redis."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import redis

from tests.attacker.conftest import AttackerStack, small_spec, submit, wait_final
from tests.conftest import OracleProcess


def _npz_b64(**arrays: np.ndarray) -> str:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return base64.b64encode(buf.getvalue()).decode()


def test_a_zip_bomb_is_refused_before_it_is_inflated(attacker: AttackerStack, oracle: OracleProcess) -> None:
    n = 90_000  # 70 MB of zeros, over the default 64 MiB, deflated to about 100 kB
    bomb = _npz_b64(x=np.zeros((n, 1, 28, 28), np.uint8), y=np.zeros(n, np.int64))
    assert len(bomb) < 200_000
    spec = small_spec(oracle.url, "key", evaluation={"size": 60, "source": {"kind": "upload", "npz_base64": bomb}})
    with attacker.client() as api:
        before = api.get("/attacks").json()["total"]
        started = time.monotonic()
        r = api.post("/attacks", json=spec)
        elapsed = time.monotonic() - started
        assert r.status_code == 413, r.text
        error = r.json()["error"]
        assert error["code"] == "upload_too_large" and error["details"]["limit"] == 64 * 1024 * 1024
        assert error["details"]["decoded_bytes"] > n * 784
        assert api.get("/attacks").json()["total"] == before
    assert elapsed < 5, elapsed  # judged from the zip directory, not by inflating 70 MB


def test_an_uploaded_evaluation_set_reaches_the_worker_as_arrays(
        attacker: AttackerStack, oracle: OracleProcess, oracle_key: tuple[str, str], mnist_test) -> None:
    _, api_key = oracle_key
    x = (mnist_test.x[9000:9040] * 255).round().astype(np.uint8)
    y = mnist_test.y[9000:9040].astype(np.int64)
    upload = _npz_b64(x=x, y=y)
    spec = small_spec(oracle.url, api_key, substitute={"rho": 1},
                      evaluation={"size": 40, "source": {"kind": "upload", "npz_base64": upload}})
    with attacker.client() as api:
        cid = submit(api, spec)
        assert api.get(f"/attacks/{cid}").json()["spec"]["evaluation"]["source"] == {
            "kind": "upload", "shape": [40, 1, 28, 28]}
        stored = redis.Redis.from_url(attacker.redis_url)
        try:
            values = [stored.get(k) or b"" for k in stored.keys(f"*{cid}*") if stored.type(k) == b"string"]
        finally:
            stored.close()
        assert values and not any(upload[1000:1060].encode() in v for v in values)
        record = wait_final(api, cid)
        assert record["state"] == "succeeded", record
        assert record["queries"]["agreement"] == 40
        samples = np.load(io.BytesIO(api.get(f"/attacks/{cid}/samples.npz").content))
    assert np.array_equal(samples["y_true"], y) and np.array_equal(samples["x"], x.astype(np.float32) / 255)
    assert sorted(p.name for p in (attacker.data_dir / cid).iterdir()) == ["samples.npz", "samples.png"]
