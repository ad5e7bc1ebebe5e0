"""An oracle process killed after it charged an idempotent batch, before it answered: the client's retry on
another process is answered within seconds (not after a 120 s timer) and the batch is charged once."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import redis

from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy
from tests.conftest import OracleProcess, RedisServer, start_oracle

PREFIX = "bbcrash"


def _kill_when_charged(server: RedisServer, key: str, victim: OracleProcess, done: threading.Event) -> None:
    """Watch every command Redis runs; the moment the victim's claim-and-charge script for `key` ran, freeze
    the victim (SIGSTOP, before it can store its answer) and kill it."""
    conn = redis.Redis(port=server.port)
    with conn.monitor() as monitor:
        done.set()
        for command in monitor.listen():
            if "EVALSHA" in command["command"] and key in command["command"]:
                os.kill(victim.process.pid, signal.SIGSTOP)
                os.kill(victim.process.pid, signal.SIGKILL)
                return


def test_a_retry_after_the_oracle_died_having_charged_is_charged_once(
        quick_model_dir: Path, redis_server: RedisServer, mnist_test, tmp_path: Path) -> None:
    survivor = start_oracle(quick_model_dir, redis_server.url, PREFIX, tmp_path, wait=False)
    victim = start_oracle(quick_model_dir, redis_server.url, PREFIX, tmp_path, wait=False)  # starting meanwhile
    try:
        for o in (survivor, victim):
            o.process.wait_ready(o.url + "/healthz", timeout_s=60, interval_s=0.1)
        client_id, api_key = survivor.create_client(5000)
        x = np.repeat(mnist_test.x[:128], 8, axis=0)  # 1,024 inputs: the forward pass outlasts the kill
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": NPY_MEDIA_TYPE, "Accept": NPY_MEDIA_TYPE}
        body = encode_npy(x)
        # A first idempotent batch loads the claim script into Redis, as in any running range (the first EVALSHA
        # of a script Redis has not seen fails with NOSCRIPT and is sent again).
        warm = httpx.post(f"{survivor.url}/v1/models/mnist/predict", content=encode_npy(x[:1]), timeout=30,
                          headers={**headers, "Idempotency-Key": "warm-up"})
        assert warm.status_code == 200
        charged_by_dead = None
        t0 = time.monotonic()
        for attempt in range(3):
            key = f"crash-{attempt}-{time.monotonic_ns()}"
            if attempt:
                victim = start_oracle(quick_model_dir, redis_server.url, PREFIX, tmp_path)
            watching = threading.Event()
            watcher = threading.Thread(target=_kill_when_charged, args=(redis_server, key, victim, watching),
                                       daemon=True)
            watcher.start()
            watching.wait(5)
            time.sleep(0.2)
            with contextlib.suppress(httpx.TransportError):  # the victim dies with the request
                httpx.post(f"{victim.url}/v1/models/mnist/predict", content=body,
                           headers={**headers, "Idempotency-Key": key}, timeout=30)
            watcher.join(10)
            victim.process.wait_or_kill(5)
            claim = redis.Redis(port=redis_server.port).hgetall(f"{PREFIX}:replay:{client_id}:{key}")
            print(f"attempt {attempt}: claim {sorted(claim)} after {time.monotonic() - t0:.1f} s")
            if claim and b"labels" not in claim:
                charged_by_dead = key
                break
        assert charged_by_dead is not None, "the victim always answered before it could be killed"
        assert survivor.usage(client_id)["used"] == 1 + len(x)  # charged by the process that died

        started = time.monotonic()
        statuses = []
        while time.monotonic() - started < 30:
            r = httpx.post(f"{survivor.url}/v1/models/mnist/predict", content=body, timeout=30,
                           headers={**headers, "Idempotency-Key": charged_by_dead})
            statuses.append(r.status_code)
            if r.status_code != 409:
                break
            time.sleep(float(r.headers["Retry-After"]))
        assert r.status_code == 200, (statuses, r.text)
        print(f"retry answered after {time.monotonic() - started:.1f} s: {statuses}")
        assert time.monotonic() - started < 15, "the dead process's claim must pass to the retry within seconds"
        assert survivor.usage(client_id)["used"] == 1 + len(x), "the retry was charged again"
        direct = httpx.post(f"{survivor.url}/v1/models/mnist/predict", content=body, headers=headers, timeout=30)
        np.testing.assert_array_equal(decode_npy(r.content), decode_npy(direct.content))
        again = httpx.post(f"{survivor.url}/v1/models/mnist/predict", content=body, timeout=30,
                           headers={**headers, "Idempotency-Key": charged_by_dead})
        assert again.headers["Idempotent-Replayed"] == "true"
        assert survivor.usage(client_id)["used"] == 1 + 2 * len(x)  # the retry once, the direct request once
    finally:
        survivor.stop()
        victim.stop()
