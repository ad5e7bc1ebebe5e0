"""PRADA on synthetic streams (no server), and its state in a real Redis: flagged, not flagged, bounded."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from redis.asyncio import Redis

from bbrange.oracle.detection import prada
from bbrange.oracle.detection.config import DetectionSettings, DetectorConfig
from bbrange.oracle.detection.detector import Detector
from bbrange.oracle.query_metrics import OracleMetrics


def feed(x: np.ndarray, y: np.ndarray, config: DetectorConfig, batch: int = 100) -> prada.PradaState:
    state = prada.PradaState(prada.stored_size(tuple(x.shape[1:]), config))
    for i in range(0, len(x), batch):
        prada.update(state, prada.project(x[i : i + batch], config), y[i : i + batch], config)
    return state


def jbda_like(x0: np.ndarray, y0: np.ndarray, epochs: int, lam: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """S0, then each epoch every point again plus λ·sgn(noise) (a stand-in for the substitute's gradient)."""
    rng = np.random.default_rng(seed)
    xs, ys, s, t = [x0], [y0], x0, y0
    for _ in range(epochs):
        child = np.clip(s + lam * np.sign(rng.standard_normal(s.shape)), 0, 1).astype(np.float32)
        xs.append(child)
        ys.append(t)
        s, t = np.concatenate([s, child]), np.concatenate([t, t])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("lam", [-0.1, 0.1])
def test_a_jacobian_like_stream_is_flagged_before_its_third_augmentation(mnist_test, lam):
    x, y = jbda_like(mnist_test.x[:150], mnist_test.y[:150], epochs=3, lam=lam)
    state = feed(x, y, DetectorConfig())
    assert state.alarm_at is not None and state.alarm_at < 1200, (state.alarm_at, state.statistic)


def test_the_same_stream_after_natural_queries_is_still_flagged(mnist_test):
    natural = mnist_test.x[1000:2000], mnist_test.y[1000:2000]
    x, y = jbda_like(mnist_test.x[:150], mnist_test.y[:150], epochs=3, lam=0.1)
    state = feed(np.concatenate([natural[0], x]), np.concatenate([natural[1], y]), DetectorConfig())
    assert state.alarm_at is not None and 1000 < state.alarm_at < 1000 + 1200


@pytest.mark.parametrize("order", ["random", "class"])
def test_natural_streams_are_not_flagged(mnist_test, order):
    rng = np.random.default_rng(1)
    idx = rng.choice(len(mnist_test.x), 2000, replace=False)
    if order == "class":
        idx = idx[np.argsort(mnist_test.y[idx], kind="stable")]
    state = feed(mnist_test.x[idx], mnist_test.y[idx], DetectorConfig())
    assert state.alarm_at is None and state.statistic is not None and state.statistic > 0.95


def test_repeats_are_skipped_not_counted_as_zero_distances(mnist_test):
    rng = np.random.default_rng(2)
    idx = rng.choice(rng.choice(len(mnist_test.x), 300, replace=False), 1500)
    state = feed(mnist_test.x[idx], mnist_test.y[idx], DetectorConfig())
    assert state.repeats > 1000 and state.alarm_at is None
    assert state.queries == 1500


def test_memory_is_bounded_whatever_the_client_sends(mnist_test):
    config = DetectorConfig(max_per_class=16, window=100)
    state = feed(mnist_test.x[:3000], mnist_test.y[:3000], config, batch=500)
    assert all(len(g.levels) <= 16 for g in state.classes.values())
    assert len(state.distances) <= 100 == len(state.distance_classes)


def test_state_in_redis_is_bounded_and_shared_by_processes(redis_server, mnist_test):
    """Two detectors (as two oracle processes) update one client in one Redis; its keys stay under the bound."""
    config = DetectorConfig(policy="flag", max_per_class=8, window=50)
    settings = DetectionSettings(default=config)

    async def run() -> tuple[int, int, dict[str, object]]:
        redis = Redis.from_url(redis_server.url)
        try:
            a, b = (Detector(redis, "bbtest-prada", OracleMetrics(), settings) for _ in range(2))
            await a.store.clear("c_bounded")

            async def process(d: Detector, start: int) -> None:  # each process's background task: one at a time
                for i in range(start, 2000, 200):
                    await d.update("c_bounded", "mnist", mnist_test.x[i : i + 100], mnist_test.y[i : i + 100])

            await asyncio.gather(process(a, 0), process(b, 100))
            state = await a.store.load("c_bounded", "mnist", prada.stored_size((1, 28, 28), config))
            key = a.store.state_key("c_bounded", "mnist")
            used = sum([await redis.hstrlen(key, f) for f in await redis.hkeys(key)])
            headers = await a.admit("c_bounded", "mnist")
            return state.queries, used, headers
        finally:
            await redis.aclose()

    queries, used, _ = asyncio.run(run())
    assert queries == 2000  # no update lost between the two "processes"
    assert used <= config.bytes_per_client(196, 10), used
