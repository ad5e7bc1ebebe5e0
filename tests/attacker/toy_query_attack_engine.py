"""A toy decision-based attack for the tests (not an algorithm of the service): each image asks random noise of
growing size until one is adversarial, then binary-searches from it towards the clean image, every question
through `PerImageQueries`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bbrange.attacker.engine.query_attacks.base import QueryAttack, SearchProgress
from bbrange.attacker.engine.query_attacks.budget import PerImageQueries


@dataclass(frozen=True)
class NoiseThenBisect(QueryAttack):
    name: ClassVar[str] = "toy-query"
    targeted: ClassVar[bool] = False
    scales: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    steps: int = 8

    def search(self, queries: PerImageQueries, starts: np.ndarray | None, rng: np.random.Generator,
               progress: SearchProgress) -> None:
        x = queries.x_clean
        n = len(x)
        found, x_adv = np.zeros(n, bool), x.copy()
        if starts is not None:
            ok = queries.ask(np.arange(n), starts)
            found |= ok
            x_adv[ok] = starts[ok]
        for scale in self.scales:
            todo = np.flatnonzero(~found & (queries.remaining() > 0))
            if not len(todo):
                break
            candidate = np.clip(x[todo] + rng.uniform(-scale, scale, x[todo].shape), 0, 1).astype(np.float32)
            ok = queries.ask(todo, candidate)
            found[todo[ok]] = True
            x_adv[todo[ok]] = candidate[ok]
        low, high = np.zeros(n), np.ones(n)  # the share of the way from the clean image to x_adv
        for step in range(self.steps):
            active = np.flatnonzero(found & (queries.remaining() > 0))
            if not len(active):
                break
            mid = (low[active] + high[active]) / 2
            shape = (-1,) + (1,) * (x.ndim - 1)
            candidate = (x[active] + mid.reshape(shape) * (x_adv[active] - x[active])).astype(np.float32)
            ok = queries.ask(active, candidate)
            high[active[ok]], low[active[~ok]] = mid[ok], mid[~ok]
            progress((step + 1) / self.steps)
