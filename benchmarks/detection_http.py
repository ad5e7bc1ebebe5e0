"""The HTTP part of benchmarks/detection.py: oracle throughput with the extraction detector on ÷ off.

A private redis-server and one `bbrange oracle serve` per setting on free loopback ports; 4 clients (own
keys) send batches of 100 MNIST test images as binary .npy for a fixed time; the settings alternate
(off, on, off, on) so that a drift of the shared machine's load falls on both. Everything started is
stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bbrange.shared.datasets import load_dataset
from bbrange.shared.oracle_admin import OracleAdmin
from bbrange.shared.stack import Stack, commands
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


def _cell(stack: Stack, redis_url: str, enabled: bool, bodies: list[bytes], duration_s: float) -> float:
    env = {**commands.oracle_env(TOKEN), "BBRANGE_DETECTION_ENABLED": "true" if enabled else "false"}
    port = stack.port()
    env["BBRANGE_REDIS_PREFIX"] = f"bench{port}"
    oracle = stack.start_oracle(MODEL_DIR, redis_url, port=port, env=env, models=["mnist"],
                                log=stack.log_dir / f"oracle-{port}.log")
    url = oracle.url
    try:
        with OracleAdmin(url, TOKEN) as admin:
            keys = [admin.create_client(f"bench-{i}", 10**9).api_key for i in range(4)]
        asyncio.run(_load(url, keys, bodies, 1.0))  # warm-up
        started = time.perf_counter()
        answered = asyncio.run(_load(url, keys, bodies, duration_s))
        return answered / (time.perf_counter() - started)
    finally:
        oracle.process.stop(grace_s=10)


def throughput_ratio(duration_s: float) -> tuple[float, float, float]:
    """Labels/s with the detector on, off, and on ÷ off."""
    test = load_dataset("mnist", "test", download=False)
    rng = np.random.default_rng(0)
    bodies = [encode_npy(test.x[rng.choice(len(test.x), 100, replace=False)]) for _ in range(200)]
    logs = Path(tempfile.mkdtemp(prefix="bbrange-detection-"))
    with Stack(logs, launcher=[str(BBRANGE)], stop_grace_s=5) as stack:
        redis = stack.start_redis()
        results: dict[bool, list[float]] = {True: [], False: []}
        for enabled in (False, True, False, True):
            results[enabled].append(_cell(stack, redis.url, enabled, bodies, duration_s))
        on, off = float(np.mean(results[True])), float(np.mean(results[False]))
        return on, off, on / off
