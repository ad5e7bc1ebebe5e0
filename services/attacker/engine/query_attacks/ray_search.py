"""The distance from each image to the decision boundary along a direction, found by queries with every image
in lockstep: Sign-OPT's g(θ) (its binary search from a known adversarial radius and its fine-grained local
search around the last g) and RayS's ray radius.

Each image has at most one search under way, in one of these stages, and sends one query per step:

    CHECK   asks at the starting radius: a plain search rejects the ray if that is not adversarial (g = inf)
            and bisects [0, start] if it is; a local search brackets the boundary around the start
    GROW    not adversarial yet: asks at hi, multiplying it by 1.01 until adversarial (inf past MAX_RADIUS)
    SHRINK  adversarial already: asks at lo, multiplying it by 0.99 until not adversarial
    BISECT  asks at the middle of [lo, hi] until hi - lo <= tol

so the radius a search returns (hi) is always one the oracle answered adversarial: the point along it is
already kept by `PerImageQueries`.
"""

from __future__ import annotations

import numpy as np

IDLE, CHECK, GROW, SHRINK, BISECT = 0, 1, 2, 3, 4
MAX_RADIUS = 20.0  # Sign-OPT's local search gives a direction up past this L2 radius (the reference's 20)
GROW_BY, SHRINK_BY = 1.01, 0.99


def along(x: np.ndarray, theta: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """x + radius·θ clipped to the valid range, per row (flat rows); the one formula every query point uses."""
    out: np.ndarray = np.clip(x + radius[:, None] * theta, 0.0, 1.0).astype(np.float32)
    return out


def unit(v: np.ndarray) -> np.ndarray:
    """Each row scaled to L2 norm 1."""
    out: np.ndarray = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return out


class RaySearches:
    """One boundary search per image of `x_flat` (N, D), each in its own stage."""

    def __init__(self, x_flat: np.ndarray) -> None:
        n, d = x_flat.shape
        self.x = x_flat
        self.theta = np.zeros((n, d))
        self.stage = np.zeros(n, np.int8)
        self.local = np.zeros(n, bool)
        self.start = np.zeros(n)
        self.lo = np.zeros(n)
        self.hi = np.zeros(n)
        self.tol = np.zeros(n)
        self.result = np.full(n, np.inf)  # the boundary radius each image's last search found (inf: none)

    def begin(self, images: np.ndarray, theta: np.ndarray, start: np.ndarray, tol: float | np.ndarray, *,
              local: bool, known_adversarial: np.ndarray | None = None) -> np.ndarray:
        """Start a search along unit θ from radius `start` for each of `images`; `known_adversarial` rows
        (the point at `start` was answered adversarial already) bisect [0, start] at once. Returns the
        images whose search is over already (their `result` is set)."""
        images = np.asarray(images, np.int64)
        self.theta[images] = theta
        self.start[images] = start
        self.tol[images] = tol
        self.local[images] = local
        self.result[images] = np.inf
        self.stage[images] = CHECK
        known = np.zeros(len(images), bool) if known_adversarial is None else np.asarray(known_adversarial, bool)
        k = images[known]
        self.lo[k], self.hi[k], self.stage[k] = 0.0, self.start[k], BISECT
        return self._settle(k)

    def searching(self) -> np.ndarray:
        return np.flatnonzero(self.stage != IDLE)

    def stop(self, images: np.ndarray) -> None:
        """Abandon the searches of `images` (their budget is spent)."""
        self.stage[images] = IDLE

    def queries(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, flat points): the one query of each image whose search is under way."""
        images = self.searching()
        stage = self.stage[images]
        radius = np.where(stage == CHECK, self.start[images],
                          np.where(stage == GROW, self.hi[images],
                                   np.where(stage == SHRINK, self.lo[images], (self.lo[images] + self.hi[images]) / 2)))
        return images, along(self.x[images], self.theta[images], radius)

    def answer(self, images: np.ndarray, adversarial: np.ndarray) -> np.ndarray:
        """Move each search on by the answer to its query (from `queries`); returns the images whose search
        ended, with `result` set (inf: the ray was rejected)."""
        stage, adv = self.stage[images].copy(), np.asarray(adversarial, bool)
        lo, hi, start = self.lo[images], self.hi[images], self.start[images]
        mid = (lo + hi) / 2
        ended = np.zeros(len(images), bool)
        rejected = np.zeros(len(images), bool)

        check = stage == CHECK
        local = self.local[images]
        plain_miss = check & ~local & ~adv
        rejected |= plain_miss
        to_bisect = check & ~local & adv
        lo = np.where(to_bisect, 0.0, lo)
        hi = np.where(to_bisect, start, hi)
        local_in, local_out = check & local & adv, check & local & ~adv
        lo = np.where(local_in, start * SHRINK_BY, np.where(local_out, start, lo))
        hi = np.where(local_in, start, np.where(local_out, start * GROW_BY, hi))
        new = np.where(to_bisect, BISECT, np.where(local_in, SHRINK, np.where(local_out, GROW, stage)))

        grow = stage == GROW
        new = np.where(grow & adv, BISECT, new)
        grow_on = grow & ~adv
        lo = np.where(grow_on, hi, lo)
        hi = np.where(grow_on, hi * GROW_BY, hi)
        rejected |= grow_on & (hi > MAX_RADIUS)

        shrink = stage == SHRINK
        new = np.where(shrink & ~adv, BISECT, new)
        shrink_on = shrink & adv
        hi = np.where(shrink_on, lo, hi)
        lo = np.where(shrink_on, lo * SHRINK_BY, lo)

        bisect = stage == BISECT
        hi = np.where(bisect & adv, mid, hi)
        lo = np.where(bisect & ~adv, mid, lo)

        self.lo[images], self.hi[images] = lo, hi
        self.stage[images] = np.where(rejected, IDLE, new)
        self.result[images[rejected]] = np.inf
        ended |= rejected
        return np.concatenate([images[ended], self._settle(images[~ended])])

    def _settle(self, images: np.ndarray) -> np.ndarray:
        """End the bisections of `images` that are within their tolerance; returns them."""
        done: np.ndarray = images[(self.stage[images] == BISECT) & (self.hi[images] - self.lo[images] <= self.tol[images])]
        self.result[done] = self.hi[done]
        self.stage[done] = IDLE
        return done
