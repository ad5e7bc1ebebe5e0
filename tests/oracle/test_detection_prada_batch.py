"""The batched PRADA update against the one-input-at-a-time reference: the same state for random streams."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bbrange.oracle.detection import prada
from bbrange.oracle.detection.config import DetectorConfig


def _reference_add(g: prada.ClassSet, z: np.ndarray, d: float, cap: int) -> None:
    level = np.rint(z * 255.0).astype(np.float32)
    if len(g.levels) < cap:
        g.levels = np.concatenate([g.levels, level[None]])
    else:
        g.levels[g.head] = level
        g.head = (g.head + 1) % cap
    g.record(d)


def reference_shapiro_w(distances: np.ndarray, classes: np.ndarray, min_distances: int) -> float | None:
    if len(distances) <= min_distances:
        return None
    labels, counts = np.unique(classes, return_counts=True)
    d = distances[np.isin(classes, labels[counts >= prada.MIN_PER_CLASS])].astype(np.float64)
    if len(d) <= min_distances:
        return None
    mean, std = d.mean(), d.std()
    if std > 0:
        d = d[np.abs(d - mean) < 3 * std]
    if len(d) <= min_distances or np.ptp(d) == 0:
        return 0.0 if len(d) > min_distances else None
    return float(stats.shapiro(d).statistic)


def reference_check(state: prada.PradaState, new_d: list[float], new_c: list[int], config: DetectorConfig) -> None:
    if not new_d:
        return
    state.distances = np.concatenate([state.distances, np.asarray(new_d, np.float32)])[-config.window:]
    state.distance_classes = np.concatenate([state.distance_classes, np.asarray(new_c, np.int16)])[-config.window:]
    w = reference_shapiro_w(state.distances, state.distance_classes, config.min_distances)
    if w is not None:
        state.statistic = w
        state.min_statistic = w if state.min_statistic is None else min(state.min_statistic, w)
        if w < config.delta and state.alarm_at is None:
            state.alarm_at = state.queries


def reference_update(state: prada.PradaState, z: np.ndarray, labels: np.ndarray, config: DetectorConfig) -> None:
    """The update as it was before it was batched: one input after the other, the check through scipy's shapiro
    (kept here as the specification; only G_c's points are kept as levels now)."""
    z = np.asarray(z, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    before = np.full(len(z), np.inf, np.float32)
    for c in np.unique(labels):
        g = state.classes.get(int(c))
        if g is not None and len(g.levels):
            rows = labels == c
            p = g.levels / np.float32(255.0)  # the points as they were stored: float32 in [0, 1]
            sq = (z[rows] ** 2).sum(1)[:, None] + (p * p).sum(1)[None, :] - 2.0 * (z[rows] @ p.T)
            before[rows] = np.sqrt(np.maximum(sq.min(1), 0.0))
    added = np.empty_like(z)
    added_class = np.full(len(z), -1, np.int64)
    n_added = 0
    new_d: list[float] = []
    new_c: list[int] = []
    since_check = 0
    for i in range(len(z)):
        c = int(labels[i])
        state.queries += 1
        since_check += 1
        g = state.classes.get(c)
        if g is None:
            g = state.classes[c] = state.new_class()
            _reference_add(g, z[i], 0.0, config.max_per_class)
            added[n_added], added_class[n_added] = z[i], c
            n_added += 1
        else:
            d = float(before[i])
            if n_added:
                fresh = added[:n_added][added_class[:n_added] == c]
                if len(fresh):
                    diff = fresh - z[i]
                    d = min(d, float(np.sqrt(np.einsum("ij,ij->i", diff, diff).min())))
            if d < config.duplicate_distance:
                state.repeats += 1
            else:
                scale = g.scale
                if scale is not None:
                    new_d.append(d / scale)
                    new_c.append(c)
                if d > g.threshold:
                    _reference_add(g, z[i], d, config.max_per_class)
                    added[n_added], added_class[n_added] = z[i], c
                    n_added += 1
        if since_check >= config.check_every or i == len(z) - 1:
            reference_check(state, new_d, new_c, config)
            new_d, new_c, since_check = [], [], 0


def random_stream(rng: np.random.Generator, n: int, classes: int, shape: tuple[int, ...],
                  repeats: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Natural-ish points around a centre per class, Jacobian-like steps from earlier ones, and exact repeats."""
    centres = rng.random((classes, *shape)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    x = np.clip(centres[labels] + rng.normal(0, 0.2, (n, *shape)), 0, 1).astype(np.float32)
    for i in range(1, n):
        kind = rng.random()
        j = int(rng.integers(0, i))
        if kind < repeats:  # an exact repeat of an earlier query
            x[i], labels[i] = x[j], labels[j]
        elif kind < repeats + 0.25:  # an earlier query plus λ·sgn(noise)
            x[i] = np.clip(x[j] + 0.1 * np.sign(rng.standard_normal(shape)), 0, 1)
            labels[i] = labels[j]
    return x, labels


# The reference's float32 distances (‖a‖²+‖b‖²−2ab on [0, 1] values) are off by about 1e-5 relative; the
# batched ones are exact. The discrete state (points, counts, repeats, the alarm) must be equal.
TOL = 1e-4


def assert_same_state(a: prada.PradaState, b: prada.PradaState) -> None:
    assert (a.queries, a.repeats, a.alarm_at) == (b.queries, b.repeats, b.alarm_at)
    assert sorted(a.classes) == sorted(b.classes)
    for c, g in a.classes.items():
        h = b.classes[c]
        assert (g.head, g.count) == (h.head, h.count), c
        np.testing.assert_array_equal(g.levels, h.levels)
        assert g.total == pytest.approx(h.total, rel=TOL) and g.total_sq == pytest.approx(h.total_sq, rel=TOL)
        assert g.threshold == pytest.approx(h.threshold, rel=TOL, abs=1e-6)
    np.testing.assert_allclose(a.distances, b.distances, rtol=TOL)
    np.testing.assert_array_equal(a.distance_classes, b.distance_classes)
    for w, v in ((a.statistic, b.statistic), (a.min_statistic, b.min_statistic)):
        assert (w is None) == (v is None) and (w is None or w == pytest.approx(v, abs=TOL))


CONFIGS = {
    "ring full": DetectorConfig(max_per_class=4, window=40, min_distances=10, check_every=7),
    "ring of one": DetectorConfig(max_per_class=1, window=30, min_distances=5, check_every=1),
    "ring never full": DetectorConfig(max_per_class=10_000, window=200, min_distances=20, check_every=50),
    "defaults": DetectorConfig(),
    "no pooling, no repeats": DetectorConfig(pool=1, duplicate_distance=0.0, max_per_class=16, min_distances=10),
}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_batched_update_is_the_sequential_one(name, seed):
    config = CONFIGS[name]
    rng = np.random.default_rng(seed)
    shape = (1, 8, 8) if seed % 2 else (1, 28, 28)
    # Without repeat skipping, an exact repeat is at 0 here and at float32 noise (about 1e-3) in the reference.
    x, y = random_stream(rng, 1200, int(rng.integers(1, 11)), shape, repeats=0.15 if config.duplicate_distance else 0)
    dim = prada.stored_size(shape, config)
    batched, sequential = prada.PradaState(dim), prada.PradaState(dim)
    i = 0
    while i < len(x):
        n = int(rng.choice([1, 2, 10, 100, 200, int(rng.integers(1, 201))]))
        z = prada.project(x[i : i + n], config)
        prada.update(batched, z, y[i : i + n], config)
        reference_update(sequential, z, y[i : i + n], config)
        assert_same_state(batched, sequential)
        i += n
    assert batched.repeats > 0 or config.duplicate_distance == 0


def test_a_class_longer_than_a_chunk_sees_the_earlier_chunks(monkeypatch):
    monkeypatch.setattr(prada, "_CHUNK", 7)
    config = CONFIGS["ring full"]
    rng = np.random.default_rng(7)
    x, y = random_stream(rng, 600, classes=2, shape=(1, 8, 8))
    batched, sequential = prada.PradaState(16), prada.PradaState(16)
    for i in range(0, 600, 150):
        z = prada.project(x[i : i + 150], config)
        prada.update(batched, z, y[i : i + 150], config)
        reference_update(sequential, z, y[i : i + 150], config)
        assert_same_state(batched, sequential)


def test_an_empty_batch_changes_nothing():
    state = prada.PradaState(16)
    prada.update(state, np.zeros((0, 16), np.float32), np.zeros(0, np.int64), DetectorConfig())
    assert state.queries == 0 and not state.classes


def test_an_exact_repeat_is_at_distance_zero_even_at_full_intensity():
    """Squared distances are exact integers of levels: no rounding makes a repeat look like a new point."""
    config = DetectorConfig(pool=1, duplicate_distance=1e-9)
    rng = np.random.default_rng(3)
    x = rng.integers(200, 256, (2, 1, 14, 14)).astype(np.float32) / 255.0
    z = prada.project(np.concatenate([x, x]), config)  # each point, then both again (same batch)
    state = prada.PradaState(196)
    prada.update(state, z, np.zeros(4, np.int64), config)
    prada.update(state, z[:2], np.zeros(2, np.int64), config)  # and again, against the stored points
    assert state.repeats == 4 and len(state.classes[0].levels) == 2
