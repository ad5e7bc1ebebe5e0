"""HopSkipJumpAttack (Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack",
IEEE S&P 2020, arXiv:1904.02144), advanced across a batch of images: every phase (each image's gradient
estimate, each binary-search halving, each step-size trial) is one oracle call with the rows of all images.

It follows the authors' reference code (github.com/Jianbo-Lab/HSJA, hsja.py), compared with ART's
(adversarial-robustness-toolbox, art/attacks/evasion/hop_skip_jump.py). Its defaults are the reference's:

    init_num_evals 100, max_num_evals 10,000   gradient queries at iteration t: min(100·√t, 10,000)
    gamma 1.0                                  binary-search threshold θ = γ/d^{3/2} (L2), γ/d² (L∞)
    stepsize_search "geometric_progression"    ξ = dist/√t, halved until adversarial ("grid_search": 20 sizes)
    δ_t = 0.1 at t = 1, then √d·θ·dist (L2) or d·θ·dist (L∞), dist the distance of the last point searched

Initialisation: a start the caller gives (targeted: an image of the target class) is checked with one query;
where there is none or the oracle disagrees, an untargeted search draws uniform noise until it is adversarial
(at most 10,000 draws, each counted, as the reference), blended towards the clean image to 0.001, while a
targeted one leaves the image without an adversarial. The iterations run until each image's budget is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from bbrange.attacker.engine.query_attacks.base import QueryAttack, SearchProgress
from bbrange.attacker.engine.query_attacks.boundary import ask_trimmed, binary_search, estimate_normal, project
from bbrange.attacker.engine.query_attacks.budget import PerImageQueries, distances

StepsizeSearch = Literal["geometric_progression", "grid_search"]
INIT_NOISE_DRAWS = 10_000  # the reference gives up on random noise after this many draws per image
MAX_NOISE_PER_ROUND = 64
BLEND_TOLERANCE = 0.001  # the reference's blend search of the noise towards the clean image
MAX_HALVINGS = 30  # ξ below dist·2⁻³⁰: the step is lost in float32, the iteration keeps its point
GRID_SIZES = np.logspace(-4, 0, num=20)


@dataclass(frozen=True)
class HopSkipJump(QueryAttack):
    """HopSkipJumpAttack, L2 or L∞, untargeted or targeted (`target`, as every query attack)."""

    name: ClassVar[str] = "hopskipjump"
    init_num_evals: int = 100
    max_num_evals: int = 10_000
    gamma: float = 1.0
    stepsize_search: StepsizeSearch = "geometric_progression"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.init_num_evals <= self.max_num_evals:
            raise ValueError("need 1 <= init_num_evals <= max_num_evals")
        if self.gamma <= 0:
            raise ValueError("gamma must be positive")
        if self.stepsize_search not in ("geometric_progression", "grid_search"):
            raise ValueError(f"unknown stepsize_search {self.stepsize_search!r}")

    def search(self, queries: PerImageQueries, starts: np.ndarray | None, rng: np.random.Generator,
               progress: SearchProgress) -> None:
        n = len(queries.x_clean)
        for first in range(0, n, self.batch_size):
            group = np.arange(first, min(first + self.batch_size, n))
            _Search(self, queries, group, rng).run(None if starts is None else starts[group], progress)
        progress(1.0)


class _Search:
    """The state of one batch of images; arrays are indexed by position in the batch, `images` maps to the
    `PerImageQueries` index."""

    def __init__(self, attack: HopSkipJump, queries: PerImageQueries, images: np.ndarray,
                 rng: np.random.Generator) -> None:
        self.a, self.q, self.images, self.rng = attack, queries, images, rng
        self.shape = queries.x_clean.shape[1:]
        self.x0 = queries.x_clean[images].reshape(len(images), -1).astype(np.float32)
        self.d = self.x0.shape[1]
        self.theta = attack.gamma / (self.d ** 1.5 if attack.norm == "l2" else self.d ** 2)
        self.cur = self.x0.copy()  # each image's boundary point (adversarial side)
        self.searched_dist = np.zeros(len(images))  # distance of the point its last binary search started from
        self.alive = np.zeros(len(images), bool)  # has an adversarial point and is still searching

    def live(self) -> np.ndarray:
        """Positions of the images with a boundary point and budget left."""
        return np.flatnonzero(self.alive & (self.q.remaining(self.images) > 0))

    def ask(self, pos: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ask_trimmed(self.q, self.images[pos], x, self.shape)

    def run(self, starts: np.ndarray | None, progress: SearchProgress) -> None:
        if starts is not None:
            self.alive = self._from_starts(starts)
        if self.a.target is None:
            self._from_noise(np.flatnonzero(~self.alive))
        pos = self.live()
        self._to_boundary(pos, self.cur[pos])
        t = 0
        while len(pos := self.live()):
            t += 1
            self._iterate(pos, t)
            progress(float(self.q.queries.sum()) / (len(self.q.queries) * self.q.max_queries))

    def _from_starts(self, starts: np.ndarray) -> np.ndarray:
        """Which caller-given starts the oracle confirms (one query each); those become the first points."""
        pos = np.arange(len(self.images))
        flat = np.asarray(starts, np.float32).reshape(len(pos), -1)
        adv, _ = self.ask(pos, flat)
        self.cur[adv] = flat[adv]
        return adv

    def _from_noise(self, pos: np.ndarray) -> None:
        """Uniform noise until adversarial, then blended towards the clean image (the reference's
        `initialize`). Draws per round double up to 64, so an image that noise rarely fools does not cost one
        oracle round trip per draw; after its first success a round wastes at most as many as came before."""
        drawn = np.zeros(len(self.images), np.int64)
        noise = np.zeros_like(self.x0)
        hit_any = np.zeros(len(self.images), bool)
        per_round = 1
        while len(pos):
            per = np.minimum(per_round, INIT_NOISE_DRAWS - drawn[pos])
            rows = np.repeat(pos, per)
            x = self.rng.uniform(0.0, 1.0, (len(rows), self.d)).astype(np.float32)
            adv, sent = self.ask(rows, x)
            np.add.at(drawn, rows[sent], 1)
            hit = np.flatnonzero(adv)
            first_hit, at = np.unique(rows[hit], return_index=True)
            noise[first_hit] = x[hit[at]]
            hit_any[first_hit] = True
            pos = pos[~hit_any[pos] & (drawn[pos] < INIT_NOISE_DRAWS) & (self.q.remaining(self.images[pos]) > 0)]
            per_round = min(2 * per_round, MAX_NOISE_PER_ROUND)
        self.alive |= hit_any
        pos = np.flatnonzero(hit_any)
        low, high = np.zeros(len(pos)), np.ones(len(pos))
        live = np.ones(len(pos), bool)
        while (todo := np.flatnonzero(live & (high - low > BLEND_TOLERANCE))).size:
            mid = (high[todo] + low[todo]) / 2.0
            adv, sent = self.ask(pos[todo], project(self.x0[pos[todo]], noise[pos[todo]], mid, "l2"))
            live[todo[~sent]] = False
            high[todo[sent & adv]] = mid[sent & adv]
            low[todo[sent & ~adv]] = mid[sent & ~adv]
        self.cur[pos] = project(self.x0[pos], noise[pos], high, "l2")

    def _to_boundary(self, pos: np.ndarray, x_adv: np.ndarray) -> None:
        if len(pos):
            self.cur[pos], self.searched_dist[pos] = binary_search(
                self.q, self.images[pos], self.x0[pos], x_adv, self.a.norm, self.theta, self.shape)

    def _iterate(self, pos: np.ndarray, t: int) -> None:
        a = self.a
        if t == 1:
            delta = np.full(len(pos), 0.1)
        else:
            delta = (np.sqrt(self.d) if a.norm == "l2" else self.d) * self.theta * self.searched_dist[pos]
        if a.evasion is not None:  # probes closer than the transformation's own change would be answered at random
            delta = np.maximum(delta, a.evasion.probe_radius(self.d, a.norm))
        num_evals = int(min(a.init_num_evals * np.sqrt(t), a.max_num_evals))
        grad = estimate_normal(self.q, self.images[pos], self.cur[pos], delta, num_evals, a.norm, self.rng,
                               self.shape)
        update = np.sign(grad) if a.norm == "linf" else grad
        dist = distances(self.x0[pos], self.cur[pos], a.norm)
        if a.stepsize_search == "geometric_progression":
            self._geometric_step(pos, update, dist / np.sqrt(t))
        else:
            self._grid_step(pos, update, dist)

    def _geometric_step(self, pos: np.ndarray, update: np.ndarray, xi: np.ndarray) -> None:
        """ξ halved until x + ξ·v is adversarial, then back to the boundary. An image whose budget ends
        during the trials, or that never succeeds, keeps its point."""
        moved = self.cur[pos].copy()
        todo = np.arange(len(pos))
        for _ in range(MAX_HALVINGS):
            p = pos[todo]
            trial = np.clip(self.cur[p] + xi[todo, None] * update[todo], 0.0, 1.0).astype(np.float32)
            adv, sent = self.ask(p, trial)
            moved[todo[adv]] = trial[adv]
            todo = todo[sent & ~adv]
            xi[todo] /= 2.0
            if not len(todo):
                break
        keep = self.q.remaining(self.images[pos]) > 0
        self._to_boundary(pos[keep], moved[keep])

    def _grid_step(self, pos: np.ndarray, update: np.ndarray, dist: np.ndarray) -> None:
        """The reference's grid search: 20 sizes dist·10^[−4, 0] in one call, every adversarial one searched
        back to the boundary, and the closest kept. An image with none keeps its point."""
        k = len(GRID_SIZES)
        owner = np.repeat(np.arange(len(pos)), k)
        eps = (GRID_SIZES[None, :] * dist[:, None]).reshape(-1)
        trial = np.clip(self.cur[pos][owner] + eps[:, None] * update[owner], 0.0, 1.0).astype(np.float32)
        adv, _ = self.ask(pos[owner], trial)
        owner, trial = owner[adv], trial[adv]
        if not len(owner):
            return
        p = pos[owner]
        out, start_dist = binary_search(self.q, self.images[p], self.x0[p], trial, self.a.norm, self.theta, self.shape)
        order = np.lexsort((distances(self.x0[p], out, self.a.norm), owner))
        best = order[np.unique(owner[order], return_index=True)[1]]
        self.cur[p[best]], self.searched_dist[p[best]] = out[best], start_dist[best]
