"""Streams for benchmarks/detection.py: benign clients of the MNIST oracle, and PRADA fed as the oracle feeds it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from bbrange.oracle.detection import prada
from bbrange.oracle.detection.config import DetectorConfig
from bbrange.shared.datasets import Dataset


@dataclass
class Fed:
    alarm_at: int | None
    min_w: float | None
    state: prada.PradaState


def feed(batches: Iterable[tuple[np.ndarray, np.ndarray]], config: DetectorConfig) -> Fed:
    """PRADA over answered batches (inputs, the oracle's labels) in order, as one client of the oracle."""
    state: prada.PradaState | None = None
    for x, labels in batches:
        z = prada.project(x, config)
        state = state or prada.PradaState(z.shape[1])
        # One batch at a time, W every check_every queries, as the oracle's detector does.
        prada.update(state, z, labels, config)
    assert state is not None
    return Fed(state.alarm_at, state.min_statistic, state)


def _batches(x: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Split a stream into requests of 1 to 200 inputs, as people and scripts send them."""
    out, i = [], 0
    while i < len(x):
        n = int(rng.choice([1, 10, 32, 100, 200]))
        out.append(x[i : i + n])
        i += n
    return out


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light augmentation: shift by up to 2 pixels, brightness ×0.8..1.2, Gaussian noise σ=0.02."""
    out = np.empty_like(x)
    for i, img in enumerate(x):
        dy, dx = rng.integers(-2, 3, size=2)
        shifted = np.roll(img, (int(dy), int(dx)), axis=(1, 2))
        out[i] = shifted * rng.uniform(0.8, 1.2) + rng.normal(0, 0.02, img.shape)
    return np.clip(out, 0, 1).astype(np.float32)


def benign_streams(train: Dataset, test: Dataset, clients: int, queries: int, seed: int,
                   ) -> list[tuple[str, list[np.ndarray]]]:
    """`clients` benign clients (at least 100 in the benchmark), each a list of requests, labelled by kind."""
    rng = np.random.default_rng(seed)
    pool_x = np.concatenate([test.x, train.x])
    pool_y = np.concatenate([test.y, train.y])
    kinds = ["random order", "class order", "repeated images", "lightly augmented", "several users, one key"]
    streams = []
    for i in range(clients):
        kind = kinds[i % len(kinds)]
        if kind == "random order":
            x = pool_x[rng.choice(len(pool_x), queries, replace=False)]
        elif kind == "class order":
            idx = rng.choice(len(pool_x), queries, replace=False)
            x = pool_x[idx[np.argsort(pool_y[idx], kind="stable")]]
        elif kind == "repeated images":  # a few hundred images, each asked about several times
            few = rng.choice(len(pool_x), max(queries // 4, 1), replace=False)
            x = pool_x[rng.choice(few, queries)]
        elif kind == "lightly augmented":
            x = augment(pool_x[rng.choice(len(pool_x), queries, replace=False)], rng)
        else:  # four people behind one key: random, class order, repeats, augmented, requests interleaved
            share = queries // 4
            idx = rng.choice(len(pool_x), 4 * share, replace=False).reshape(4, share)
            users = [pool_x[idx[0]], pool_x[idx[1][np.argsort(pool_y[idx[1]], kind="stable")]],
                     pool_x[rng.choice(idx[2][: share // 4], share)], augment(pool_x[idx[3]], rng)]
            requests = [_batches(u, rng) for u in users]
            merged: list[np.ndarray] = []
            while any(requests):
                user = int(rng.choice([k for k in range(4) if requests[k]]))
                merged.append(requests[user].pop(0))
            streams.append((kind, merged))
            continue
        streams.append((kind, _batches(x, rng)))
    return streams


def prada_feed(requests: list[tuple[str, np.ndarray]], labels: list[tuple[str, np.ndarray]], config: DetectorConfig,
               ) -> tuple[dict[str, int], dict[str, prada.PradaState]]:
    """PRADA as the oracle runs it: one state per client, each request one batch in order. Per client the stream's
    query (1-based) at which it was flagged, and the states."""
    states: dict[str, prada.PradaState] = {}
    flags: dict[str, int] = {}
    seen = 0
    for (client, x), (same, y) in zip(requests, labels, strict=True):
        assert client == same
        if client not in flags:  # a flagged client's later queries do not move its first flag
            z = prada.project(x, config)
            state = states.get(client)
            if state is None:
                state = states[client] = prada.PradaState(z.shape[1])
            before = state.queries
            prada.update(state, z, y, config)
            if state.alarm_at is not None:
                flags[client] = seen + state.alarm_at - before
        seen += len(x)
    return flags, states
