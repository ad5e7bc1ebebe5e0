"""The attacker's answer to a stateful detector: hide the attack's queries among natural images.

A detector such as PRADA looks at the distances between a client's queries: Jacobian augmentation
makes many of them nearly equal (each new point is an earlier one plus λ·sgn(∇)). `CamouflagedCounter`
mixes `ratio` natural images (drawn from a pool, each used once until the pool runs out) into every
request of the chosen phases, in random order, and returns only the labels of the attack's own inputs.
The natural images are charged like any query and booked in the same phase, so the budget and the
query counts say what the camouflage cost; `camouflage_queries` says how much of it was camouflage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from bbrange.attacker.engine.errors import QueryPhase
from bbrange.attacker.engine.oracles import AfterQuery, BeforeQuery, LabelOracle, QueryCounter


class CamouflagedCounter(QueryCounter):
    """A `QueryCounter` that sends `ratio` natural images from `pool` with every input of `phases`."""

    def __init__(
        self,
        oracle: LabelOracle,
        pool: np.ndarray,
        ratio: float,
        budget: int | None = None,
        *,
        phases: Iterable[QueryPhase] = ("labelling",),
        seed: int = 0,
        before: BeforeQuery | None = None,
        after: AfterQuery | None = None,
    ) -> None:
        super().__init__(oracle, budget, before=before, after=after)
        if ratio < 0:
            raise ValueError("ratio must be >= 0")
        if ratio > 0 and len(pool) == 0:
            raise ValueError("camouflage needs a pool of natural images")
        self.pool = np.asarray(pool, dtype=np.float32)
        self.ratio = ratio
        self.phases = frozenset(phases)
        self.camouflage_queries = 0
        self._rng = np.random.default_rng(seed)
        self._order = np.zeros(0, dtype=np.int64)

    def _cost(self, n: int) -> int:
        return math.ceil(self.ratio * n)

    def remaining(self, phase: QueryPhase = "labelling") -> int | None:
        """Attack inputs that still fit in this phase, camouflage included in their cost."""
        left = super().remaining(phase)
        if left is None or phase not in self.phases or self.ratio == 0:
            return left
        n = int(left / (1 + self.ratio))
        while n > 0 and n + self._cost(n) > left:
            n -= 1
        return n

    def _draw(self, m: int) -> np.ndarray:
        picked = []
        while m > 0:
            if len(self._order) == 0:
                self._order = self._rng.permutation(len(self.pool))
            take, self._order = self._order[:m], self._order[m:]
            picked.append(take)
            m -= len(take)
        return self.pool[np.concatenate(picked)] if picked else self.pool[:0]

    def label(self, x: np.ndarray, phase: QueryPhase = "labelling") -> np.ndarray:
        n = len(x)
        if phase not in self.phases or self.ratio == 0 or n == 0:
            return super().label(x, phase)
        natural = self._draw(self._cost(n))
        mixed = np.concatenate([np.asarray(x, dtype=np.float32), natural])
        order = self._rng.permutation(len(mixed))
        labels = super().label(mixed[order], phase)
        self.camouflage_queries += len(natural)
        out = np.empty(len(mixed), dtype=np.int64)
        out[order] = labels
        return out[:n]
