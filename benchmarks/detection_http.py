"""The HTTP part of benchmarks/detection.py: oracle throughput with the extraction detector on ÷ off.

A private redis-server and one `bbrange oracle serve` per setting on free loopback ports; 4 clients (own
keys) send batches of 100 MNIST test images as binary .npy for a fixed time; the settings alternate
(off, on, off, on) so that a drift of the shared machine's load falls on both. Everything started is
stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bbrange.shared.datasets import load_dataset
from bbrange.shared.oracle_admin import OracleAdmin
from bbrange.shared.processes import Process, free_port, redis_pong, start_process
from bbrange.shared.wire import NPY_MEDIA_TYPE, encode_npy

BBRANGE = Path(sys.executable).parent / "bbrange"
MODEL_DIR = Path(os.environ.get("BBRANGE_MODEL_DIR", Path(__file__).resolve().parents[1] / "models"))
TOKEN = "bench-admin"


async def _load(url: str, keys: list[str], bodies: list[bytes], duration_s: float) -> int:
    answered = 0
    deadline = time.perf_counter() + duration_s

    async def client(key: str, k: int) -> None:
        nonlocal answered
        headers = {"Authorization": f"Bearer {key}", "Content-Type": NPY_MEDIA_TYPE, "Accept": NPY_MEDIA_TYPE}
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            i = k
            while time.perf_counter() < deadline:
                r = await http.post("/v1/models/mnist/predict", content=bodies[i % len(bodies)], headers=headers)
                r.raise_for_status()
                answered += 100
                i += 1

    await asyncio.gather(*(client(key, k) for k, key in enumerate(keys)))
    return answered


def _cell(redis_url: str, enabled: bool, bodies: list[bytes], duration_s: float, logs: Path) -> float:
    port = free_port()
    env = {**os.environ, "BBRANGE_ADMIN_TOKEN": TOKEN, "BBRANGE_REDIS_PREFIX": f"bench{port}",
           "BBRANGE_DETECTION_ENABLED": "true" if enabled else "false"}
    oracle = start_process("oracle", [str(BBRANGE), "oracle", "serve", "--port", str(port), "--model-dir",
                                      str(MODEL_DIR), "--redis-url", redis_url, "--device", "cpu", "--log-level",
                                      "warning", "--model", "mnist"], logs / f"oracle-{port}.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        oracle.wait_ready(url + "/healthz", timeout_s=60)
        with OracleAdmin(url, TOKEN) as admin:
            keys = [admin.create_client(f"bench-{i}", 10**9).api_key for i in range(4)]
        asyncio.run(_load(url, keys, bodies, 1.0))  # warm-up
        started = time.perf_counter()
        answered = asyncio.run(_load(url, keys, bodies, duration_s))
        return answered / (time.perf_counter() - started)
    finally:
        oracle.stop(grace_s=10)


def throughput_ratio(duration_s: float) -> tuple[float, float, float]:
    """Labels/s with the detector on, off, and on ÷ off."""
    test = load_dataset("mnist", "test", download=False)
    rng = np.random.default_rng(0)
    bodies = [encode_npy(test.x[rng.choice(len(test.x), 100, replace=False)]) for _ in range(200)]
    exe = shutil.which("redis-server")
    assert exe, "redis-server must be on PATH"
    logs = Path(tempfile.mkdtemp(prefix="bbrange-detection-"))
    port = free_port()
    redis: Process = start_process("redis-server", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                                    "--appendonly", "no"], logs / "redis.log")
    try:
        redis.wait_ready(lambda: redis_pong(port), timeout_s=10)
        url = f"redis://127.0.0.1:{port}/0"
        results: dict[bool, list[float]] = {True: [], False: []}
        for enabled in (False, True, False, True):
            results[enabled].append(_cell(url, enabled, bodies, duration_s, logs))
        on, off = float(np.mean(results[True])), float(np.mean(results[False]))
        return on, off, on / off
    finally:
        redis.stop(grace_s=5)
