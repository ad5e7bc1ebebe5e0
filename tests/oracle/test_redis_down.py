"""Fail closed: without Redis the oracle answers nothing."""

from __future__ import annotations

import httpx
import numpy as np

from bbrange.shared.processes import free_port
from bbrange.shared.wire import NPY_MEDIA_TYPE, encode_npy
from tests.conftest import RedisServer, start_oracle


def test_redis_stopped_means_503_and_nothing_answered(quick_model_dir, tmp_path):
    redis = RedisServer(free_port())
    redis.start()
    oracle = start_oracle(quick_model_dir, redis.url, "bbdown", tmp_path, extra_env={"BBRANGE_REDIS_TIMEOUT_S": "1"})
    try:
        _, key = oracle.create_client(100)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": NPY_MEDIA_TYPE}
        x = encode_npy(np.zeros((3, 1, 28, 28), np.float32))
        assert httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=x, headers=headers).status_code == 200
        assert httpx.get(f"{oracle.url}/readyz").status_code == 200

        redis.stop()
        r = httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=x, headers=headers, timeout=30)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "redis_unavailable"
        assert "labels" not in r.json()
        assert r.headers["Retry-After"] == "5"
        assert httpx.get(f"{oracle.url}/readyz", timeout=30).status_code == 503
        assert httpx.get(f"{oracle.url}/healthz").status_code == 200  # alive, just not ready
        metrics = httpx.get(f"{oracle.url}/metrics").text
        assert 'bbrange_oracle_refusals_total{model="",reason="redis_unavailable"} 2.0' in metrics
    finally:
        oracle.stop()
        redis.stop()
