"""PRADA (Juuti et al., EuroS&P 2019) for one client of one model, as a bounded state and a pure update.

For every query x that the oracle labelled c: d = the smallest L2 distance from x to the client's
growing set G_c (earlier queries of class c); d joins the distance set D, and x joins G_c when
d > T_c, where T_c = max(T_c, mean(D_Gc) − std(D_Gc)) over the distances of the points in G_c. Once D
holds more than `min_distances` values (classes with at least 10 of them, outliers beyond 3σ
removed, as the reference code does), the Shapiro–Wilk W of D is computed; W < δ raises the alarm.
Natural queries give roughly normal distances; Jacobian augmentation (each point an earlier one plus
λ·sgn(∇)) gives a peak of nearly equal small distances, and W falls.

What differs from the reference code, so that a client costs a bounded amount of memory:

  * queries are stored average-pooled by `pool` (2: MNIST's 28×28 as 14×14) and quantised to uint8,
    which makes the distances four times cheaper and a stored point 196 bytes;
  * each G_c is a ring of at most `max_per_class` points (the oldest is evicted), and D is a window
    of the last `window` distances;
  * an exact repeat (d < `duplicate_distance`) is not a new point and is skipped: it tells an
    attacker nothing new, and a user who asks twice must not look like a regular stream of zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from bbrange.oracle.detection.config import DetectorConfig

try:
    from scipy.stats._morestats import swilk as _swilk
except ImportError:  # a private name: shapiro_w falls back on stats.shapiro
    _swilk = None

MIN_PER_CLASS = 10  # the reference code's: classes with fewer distances are left out of D


def project(x: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """A batch of (N, C, H, W) inputs in [0, 1] as the float32 vectors the detector compares: average-pooled
    by `config.pool` over H and W (a partial last row or column is dropped), quantised to 1/255 as stored."""
    x = np.asarray(x, dtype=np.float32)
    p = config.pool
    if p > 1 and x.ndim == 4 and x.shape[2] >= p and x.shape[3] >= p:
        n, c, h, w = x.shape
        h, w = h - h % p, w - w % p
        x = x[:, :, :h, :w].reshape(n, c, h // p, p, w // p, p).mean(axis=(3, 5))
    flat = x.reshape(len(x), -1)
    z: np.ndarray = np.rint(np.clip(flat, 0.0, 1.0) * 255.0) / np.float32(255.0)
    return z


def stored_size(input_shape: tuple[int, ...], config: DetectorConfig) -> int:
    """Bytes of one stored point (uint8 per dimension after pooling)."""
    c, h, w = input_shape
    p = config.pool if h >= config.pool and w >= config.pool else 1
    return int(c * (h // p) * (w // p))


@dataclass
class ClassSet:
    """G_c: a ring of stored points, and the running sums of their distances for T_c."""

    levels: np.ndarray  # (n, dim) float32, n <= max_per_class: the points as their quantisation levels (z·255, 0..255)
    head: int = 0  # where the next point goes once the ring is full
    count: int = 0  # points ever added (D_Gc's size, the reference code's initial 0 included)
    total: float = 0.0
    total_sq: float = 0.0
    threshold: float = 0.0

    def store(self, new: np.ndarray, cap: int) -> None:
        """Put points (as levels) into the ring in order, as many single insertions would (the oldest evicted first)."""
        new = new.astype(np.float32, copy=False)
        room = max(cap - len(self.levels), 0)
        if room:
            self.levels = np.concatenate([self.levels, new[:room]])
            new = new[room:]
        k = len(new)
        if k:  # of k insertions at head, head+1, ... only the last cap survive
            kept = min(k, cap)
            self.levels[(self.head + np.arange(k - kept, k)) % cap] = new[k - kept :]
            self.head = (self.head + k) % cap

    def record(self, d: float) -> None:
        """A point joined at distance d: D_Gc's sums and T_c move."""
        self.count += 1
        self.total += d
        self.total_sq += d * d
        if self.count > 1:  # PRADA: T_c = max(T_c, mean - std of the growing set's distances)
            mean = self.total / self.count
            std = float(np.sqrt(max(self.total_sq / self.count - mean * mean, 0.0)))
            self.threshold = max(self.threshold, mean - std)

    @property
    def scale(self) -> float | None:
        """The mean distance of the points added after the first: the class's natural spacing."""
        return self.total / (self.count - 1) if self.count > 1 and self.total > 0 else None


@dataclass
class PradaState:
    dim: int
    classes: dict[int, ClassSet] = field(default_factory=dict)
    distances: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # window of D, oldest first
    distance_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    queries: int = 0  # inputs seen, repeats included
    repeats: int = 0
    statistic: float | None = None  # the last W
    min_statistic: float | None = None  # the lowest W so far
    alarm_at: int | None = None  # `queries` when W first fell below δ
    stored_classes: set[int] = field(default_factory=set)  # classes with a G_c in the store, loaded or not

    def new_class(self) -> ClassSet:
        return ClassSet(np.zeros((0, self.dim), np.float32))


def shapiro_w(distances: np.ndarray, classes: np.ndarray, min_distances: int) -> float | None:
    """W of the distance set, as the reference code computes it; None while there are too few distances."""
    if len(distances) <= min_distances:
        return None
    shifted = classes.astype(np.int64) - int(classes.min())
    d = distances[np.bincount(shifted)[shifted] >= MIN_PER_CLASS].astype(np.float64)
    if len(d) <= min_distances:
        return None
    mean, std = d.mean(), d.std()
    if std > 0:
        d = d[np.abs(d - mean) < 3 * std]
    if len(d) <= min_distances or np.ptp(d) == 0:
        return 0.0 if len(d) > min_distances else None  # all equal: as regular as a stream can be
    return _shapiro(d)


def _shapiro(d: np.ndarray) -> float:
    """scipy.stats.shapiro's W: its Fortran routine called as shapiro calls it, without the wrapper that costs
    ten times as much (~100 µs, paid at every check); shapiro itself where scipy no longer has the routine."""
    if _swilk is None:
        return float(stats.shapiro(d).statistic)
    y = np.sort(d)
    y -= d[len(d) // 2]  # as shapiro does (scipy gh-15777)
    return float(_swilk(y, np.zeros(len(d) // 2), 0)[0])


# Distances are computed on the stored integer levels (z·255), so that squared distances are exact integers (an
# exact repeat is exactly 0, a distance at a threshold compares the same whatever the batch): in float32 while
# dim·255² < 2**24 (MNIST pooled: 196 dims), in float64 above. ‖a−b‖² is summed as (‖b‖² − 2a·b) + ‖a‖², whose
# every partial result lies within ±dim·255² (‖a‖² + ‖b‖² first could reach twice that and round).
_CHUNK = 512  # inputs of one class compared pairwise at once: bounds the (chunk × chunk) matrix of a coalesced batch


def _levels(z: np.ndarray) -> np.ndarray:
    exact = np.float32 if z.shape[1] * 255**2 < 2**24 else np.float64
    levels: np.ndarray = z.astype(exact)
    levels *= 255.0
    np.rint(levels, out=levels)
    return levels


def _nearest_sq(u: np.ndarray, u_sq: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each row of u (levels, squared norms u_sq), the squared level distance to the nearest row of points."""
    points = points.astype(u.dtype, copy=False)
    partial = np.einsum("ij,ij->i", points, points)[None, :] - 2.0 * (u @ points.T)
    nearest: np.ndarray = np.maximum(partial.min(1) + u_sq, 0.0)
    return nearest


def update(state: PradaState, z: np.ndarray, labels: np.ndarray, config: DetectorConfig) -> None:
    """Feed one answered batch (vectors `z` from `project`, the oracle's `labels`) in order; W every `check_every`.

    As if the inputs came one at a time, with one exception: a point evicted from its ring during the batch
    still counts until the batch ends. Classes are independent, so each class's inputs are taken together:
    their distances to the points stored before the batch and to each other in two matrix products, then a
    loop of scalar steps in order (the threshold moves as points join; a point that joins lowers the later
    inputs' distances by a row of the pairwise matrix). Each distance enters D divided by its class's
    natural spacing (`ClassSet.scale`), so that classes whose images lie closer together (MNIST's ones) do
    not make D a mixture: a client asking class after class is not an anomaly, a client stepping λ from its
    earlier queries is.
    """
    z = np.asarray(z, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    u = _levels(z)
    u_sq = np.einsum("ij,ij->i", u, u)
    recorded = np.full(len(z), np.nan)  # each input's entry of D; NaN: none (a repeat, a first point, no scale yet)
    for c in np.unique(labels).tolist():
        rows = np.flatnonzero(labels == c)
        g = state.classes.get(c)
        seen = [g.levels] if g is not None and len(g.levels) else []  # what the batch's inputs compare to
        joined: list[np.ndarray] = []
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            k, recorded[chunk] = _update_class(state, c, u[chunk], u_sq[chunk], seen, config)
            if len(k):
                seen.append(u[chunk[k]])
                joined.append(chunk[k])
        if joined:
            state.classes[c].store(u[np.concatenate(joined)], config.max_per_class)
    queries = state.queries
    for start in range(0, len(z), config.check_every):
        end = min(start + config.check_every, len(z))
        kept = np.flatnonzero(~np.isnan(recorded[start:end])) + start
        state.queries = queries + end
        _check(state, recorded[kept].tolist(), labels[kept].tolist(), config)


def _update_class(state: PradaState, c: int, u: np.ndarray, u_sq: np.ndarray, seen: list[np.ndarray],
                  config: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """The inputs u (levels, in order, all of class c) against the levels `seen` and each other: G_c's sums
    and the repeats move. Returns the indices of the inputs that joined G_c, and each input's entry of D."""
    best = _nearest_sq(u, u_sq, seen[0]).astype(np.float64) if seen else np.full(len(u), np.inf)
    for points in seen[1:]:
        np.minimum(best, _nearest_sq(u, u_sq, points), out=best)
    pair = None
    if len(u) > 1:
        pair = u_sq[None, :] - 2.0 * (u @ u.T)
        pair += u_sq[:, None]
        np.maximum(pair, 0.0, out=pair)
    recorded = np.full(len(u), np.nan)
    duplicate = config.duplicate_distance
    g = state.classes.get(c)
    joined: list[int] = []
    for k in range(len(u)):
        if g is None:
            g = state.classes[c] = state.new_class()
            g.record(0.0)  # the reference code starts D_Gc with a 0
        else:
            d = math.sqrt(best[k]) / 255.0
            if d < duplicate:
                state.repeats += 1
                continue
            scale = g.scale
            if scale is not None:
                recorded[k] = d / scale
            if d <= g.threshold:
                continue
            g.record(d)
        joined.append(k)
        if pair is not None:  # the later inputs see the point that joined
            np.minimum(best[k + 1 :], pair[k, k + 1 :], out=best[k + 1 :])
    return np.asarray(joined, np.int64), recorded


def _check(state: PradaState, new_d: list[float], new_c: list[int], config: DetectorConfig) -> None:
    if not new_d:  # D is what W was last computed over (repeats, first points of a class): W is unchanged
        return
    state.distances = np.concatenate([state.distances, np.asarray(new_d, np.float32)])[-config.window:]
    state.distance_classes = np.concatenate([state.distance_classes, np.asarray(new_c, np.int16)])[-config.window:]
    w = shapiro_w(state.distances, state.distance_classes, config.min_distances)
    if w is not None:
        state.statistic = w
        state.min_statistic = w if state.min_statistic is None else min(state.min_statistic, w)
        if w < config.delta and state.alarm_at is None:
            state.alarm_at = state.queries
