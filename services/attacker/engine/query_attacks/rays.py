"""RayS (Chen and Gu, "RayS: A Ray Searching Method for Hard-label Adversarial Attack", KDD 2020), L∞,
untargeted, every image advanced together.

RayS looks for the closest decision boundary along rays x + d·s/‖s‖₂ with s in {−1, +1}^D, as the reference
implementation does (github.com/uclaml/RayS, RayS.py, its batched version):

    s starts all +1 and d = ∞ (the corner x + ∞·s, clipped); the blocks of the flattened input are taken in a
    hierarchy, the whole input, then halves, quarters, ... (block k of level l is [k·⌈D/2^l⌉, (k+1)·⌈D/2^l⌉))
    for each block, the signs of s in it are flipped: one query at the current radius d tells whether the
    flipped ray is adversarial there; if so, its boundary radius is binary searched in [0, min(d, ‖s‖₂)] to
    `tolerance` and, where shorter, (s, d) move to it

The L∞ distortion of the ray's point is d/√D (before clipping). With `epsilon`, an image stops once its
distortion is at most ε (the reference's early stop); without, it spends its whole budget.

Every image sends one query per step, all of them in one call: the first query of its next block's flip, or
the next of its binary search (`RaySearches`); each image takes its next block as soon as its search ends, so
no image waits for another's search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bbrange.attacker.engine.query_attacks.base import QueryAttack, SearchProgress
from bbrange.attacker.engine.query_attacks.budget import PerImageQueries
from bbrange.attacker.engine.query_attacks.ray_search import IDLE, RaySearches
from bbrange.shared.perturbations import Norm


@dataclass(frozen=True)
class RayS(QueryAttack):
    """RayS with the reference's binary search tolerance (1e-3 on d, the radius along the unit ray)."""

    name: ClassVar[str] = "rays"
    targeted: ClassVar[bool] = False
    norms: ClassVar[tuple[Norm, ...]] = ("linf",)
    norm: Norm = "linf"
    tolerance: float = 1e-3
    epsilon: float | None = None  # stop an image once its L∞ distortion is at most this

    def search(self, queries: PerImageQueries, starts: np.ndarray | None, rng: np.random.Generator,
               progress: SearchProgress) -> None:
        """`starts` are not used: RayS's rays start from the all-ones sign vector (it is deterministic)."""
        shape = queries.x_clean.shape[1:]
        x = queries.x_clean.reshape(len(queries.x_clean), -1).astype(np.float64)
        n, dim = x.shape
        searches = RaySearches(x)
        signs, tried = np.ones((n, dim)), np.ones((n, dim))
        radius = np.full(n, np.inf)
        reach = np.sqrt(dim)  # ‖s‖₂: past it, every coordinate of the ray's point is clipped already
        level, block = np.zeros(n, np.int64), np.zeros(n, np.int64)
        columns = np.arange(dim)
        while True:
            spent = queries.remaining() == 0
            if self.epsilon is not None:
                spent |= queries.best_distortion <= self.epsilon
            searches.stop(np.flatnonzero(spent))
            idle = np.flatnonzero(~spent & (searches.stage == IDLE))
            size = -(-dim // 2 ** level[idle])
            first, last = block[idle] * size, np.minimum(dim, (block[idle] + 1) * size)
            flip = (columns >= first[:, None]) & (columns < last[:, None])
            tried[idle] = np.where(flip, -signs[idle], signs[idle])
            searches.begin(idle, tried[idle] / reach, np.minimum(radius[idle], reach), self.tolerance, local=False)
            # each image takes its next block as soon as its last one is done, not waiting for the others
            block[idle] += 1
            next_level = (block[idle] == 2 ** level[idle]) | (last == dim)
            level[idle[next_level]] += 1
            block[idle[next_level]] = 0
            images, points = searches.queries()
            if not len(images):
                break
            ended = searches.answer(images, queries.ask(images, points.reshape(-1, *shape)))
            found = ended[searches.result[ended] < radius[ended]]
            radius[found] = searches.result[found]
            signs[found] = tried[found]
            progress(float(np.mean(queries.queries)) / self.max_queries_per_image)
