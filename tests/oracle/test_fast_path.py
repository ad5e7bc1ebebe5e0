"""What the oracle's fast path (several worker processes, API keys and detection flags remembered for a second)
must not lose: exact budgets across processes, revocation at once, 503 without Redis."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import redis

from bbrange.shared.processes import free_port
from bbrange.shared.wire import NPY_MEDIA_TYPE, encode_npy
from tests.conftest import RedisServer, start_oracle

ONE = encode_npy(np.zeros((1, 1, 28, 28), np.float32))


def _headers(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": NPY_MEDIA_TYPE, **extra}


def test_two_worker_processes_never_overspend_one_budget(quick_model_dir, redis_server, tmp_path):
    prefix = "bbworkers"
    oracle = start_oracle(quick_model_dir, redis_server.url, prefix, tmp_path, extra_env={"BBRANGE_WORKERS": "2"})
    try:
        store = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 60
        while len(store.keys(f"{prefix}:oracle-process:*")) < 2:  # each worker keeps its own liveness key
            assert time.monotonic() < deadline, "the second worker process did not start"
            time.sleep(0.2)
        budget = 150
        client_id, key = oracle.create_client(budget)

        def one(_: int) -> tuple[int, str]:
            r = httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=ONE, headers=_headers(key), timeout=60)
            return r.status_code, "" if r.status_code == 200 else r.json()["error"]["code"]

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(one, range(2 * budget)))
        assert sum(status == 200 for status, _ in answers) == budget
        assert {a for a in answers if a[0] != 200} == {(429, "budget_exhausted")}
        usage = oracle.usage(client_id)
        assert (usage["used"], usage["remaining"]) == (budget, 0)
    finally:
        oracle.stop()


def test_a_revoked_key_is_refused_at_once_though_its_key_is_remembered(quick_model_dir, redis_server, tmp_path):
    # Keys remembered for 30 s: a refusal within the test's second cannot come from the cache expiring.
    oracle = start_oracle(quick_model_dir, redis_server.url, "bbrevoke", tmp_path,
                          extra_env={"BBRANGE_RECENT_CACHE_TTL_S": "30"})
    try:
        client_id, key = oracle.create_client(100)
        url = f"{oracle.url}/v1/models/mnist/predict"
        assert httpx.post(url, content=ONE, headers=_headers(key)).status_code == 200
        assert httpx.post(url, content=ONE, headers=_headers(key, **{"Idempotency-Key": "k1"})).status_code == 200
        with oracle.admin() as admin:
            admin.post(f"/v1/admin/clients/{client_id}/revoke").raise_for_status()
        fresh = httpx.post(url, content=ONE, headers=_headers(key))
        replay = httpx.post(url, content=ONE, headers=_headers(key, **{"Idempotency-Key": "k1"}))
        for r in (fresh, replay):
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "revoked"
        assert oracle.usage(client_id)["used"] == 2
    finally:
        oracle.stop()


def test_redis_down_is_503_though_the_key_is_remembered(quick_model_dir, tmp_path):
    store = RedisServer(free_port())
    store.start()
    oracle = start_oracle(quick_model_dir, store.url, "bbdown30", tmp_path,
                          extra_env={"BBRANGE_REDIS_TIMEOUT_S": "1", "BBRANGE_RECENT_CACHE_TTL_S": "30"})
    try:
        _, key = oracle.create_client(100)
        url = f"{oracle.url}/v1/models/mnist/predict"
        assert httpx.post(url, content=ONE, headers=_headers(key)).status_code == 200
        store.stop()
        r = httpx.post(url, content=ONE, headers=_headers(key), timeout=30)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "redis_unavailable"
    finally:
        oracle.stop()
