"""Uploaded evaluation sets through the real API and worker processes: an accepted upload reaches the worker as
the arrays the API decoded, never as base64 in Redis. Refused uploads (a zip bomb, by the size it declares) are
tested in-process (tests/unit/test_submission_limits_inprocess.py)."""

from __future__ import annotations

import base64
import io

import numpy as np
import redis

from tests.attacker.conftest import AttackerStack, small_spec, submit, wait_final
from tests.conftest import OracleProcess


def _npz_b64(**arrays: np.ndarray) -> str:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return base64.b64encode(buf.getvalue()).decode()


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
