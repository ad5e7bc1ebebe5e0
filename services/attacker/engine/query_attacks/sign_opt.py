"""Sign-OPT (Cheng, Singh, Chen, Chen, Liu and Hsieh, "Sign-OPT: A Query-Efficient Hard-label Adversarial
Attack", ICLR 2020), L2, untargeted or targeted, every image advanced together.

It minimises g(θ), the L2 distance from x to the decision boundary along the unit direction θ (x + g(θ)·θ is
on the adversarial side), as the reference implementation does (github.com/cmhcbb/attackbox,
attack/Sign_OPT.py, and Sign_OPT_v2.py for the targeted case; ART's SignOPTAttack is a port of it):

    initialisation   a start the caller gave (a targeted attack's image of the target class), checked with a
                     query; else `directions` random Gaussian directions, each of the adversarial ones binary
                     searched for g to 1e-3 (rejected with one query where it is no better than the best so far)
    gradient sign    k queries at g·normalise(θ + β·u) for unit Gaussian u: ∇̂ = mean of u·(−1 if adversarial
                     else +1) (the paper's Algorithm 1, "sign_grad_v1")
    line search      θ' = normalise(θ − α·∇̂) with g(θ') by a fine-grained local search from the current g
                     (tolerance β/500): α doubles while it improves (at most 15 times); where the first step
                     fails α is quartered until one improves (at most 15 times); when α falls under 1e-4 it is
                     reset to 1 and β divided by 10, and the image stops once β < 1e-8

Every query of a step, of every image, goes to the oracle in one `PerImageQueries.ask`: images at different
stages (probing, estimating, searching) contribute their own rows, masked per stage. The adversarial points
asked are kept by `PerImageQueries`, so the reported example is always one the oracle confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bbrange.attacker.engine.query_attacks.base import QueryAttack, SearchProgress
from bbrange.attacker.engine.query_attacks.budget import PerImageQueries
from bbrange.attacker.engine.query_attacks.ray_search import RaySearches, along, unit
from bbrange.shared.perturbations import Norm

DONE, PROBE, INIT, GRAD, LS_UP, LS_DOWN = range(6)
INIT_TOLERANCE = 1e-3  # the reference's fine_grained_binary_search
LINE_SEARCH_TRIES = 15
MIN_ALPHA, MIN_BETA = 1e-4, 1e-8


@dataclass(frozen=True)
class SignOPT(QueryAttack):
    """Sign-OPT with the reference's defaults: k = 200 queries per gradient sign, α = 0.2, β = 0.001."""

    name: ClassVar[str] = "sign_opt"
    norms: ClassVar[tuple[Norm, ...]] = ("l2",)
    k: int = 200
    alpha: float = 0.2
    beta: float = 0.001
    iterations: int = 1000
    directions: int = 100

    def search(self, queries: PerImageQueries, starts: np.ndarray | None, rng: np.random.Generator,
               progress: SearchProgress) -> None:
        _SignOptRun(self, queries, rng).run(starts, progress)


class _SignOptRun:
    """The state of one `search`: per image, its stage and (θ, g), and its line search."""

    def __init__(self, attack: SignOPT, queries: PerImageQueries, rng: np.random.Generator) -> None:
        self.a, self.q, self.rng = attack, queries, rng
        self.shape = queries.x_clean.shape[1:]
        self.x = queries.x_clean.reshape(len(queries.x_clean), -1).astype(np.float64)
        n, d = self.x.shape
        self.searches = RaySearches(self.x)
        self.phase = np.full(n, PROBE, np.int8)
        self.theta, self.g = np.zeros((n, d)), np.full(n, np.inf)
        self.alpha, self.beta = np.full(n, attack.alpha), np.full(n, attack.beta)
        self.iteration = np.zeros(n, np.int64)
        self.grad = np.zeros((n, d))
        self.min_theta, self.min_g = np.zeros((n, d)), np.full(n, np.inf)
        self.cand = np.zeros((n, d))
        self.tries = np.zeros(n, np.int64)
        # initialisation: the probed directions (unit) and their radii, which were adversarial, the next to try
        self.probe_dir = np.zeros((n, 0, d), np.float32)
        self.probe_radius = np.zeros((n, 0))
        self.probe_adv = np.zeros((n, 0), bool)
        self.next_probe = np.zeros(n, np.int64)

    def run(self, starts: np.ndarray | None, progress: SearchProgress) -> None:
        if starts is not None:
            self._check_starts(np.asarray(starts, np.float64).reshape(self.x.shape))
        self._probe()
        while True:
            spent = self.q.remaining() == 0
            self.phase[spent] = DONE
            self.searches.stop(np.flatnonzero(spent))
            grad_images = np.flatnonzero(self.phase == GRAD)
            rows = np.minimum(self.a.k, self.q.remaining(grad_images))
            owner = np.repeat(grad_images, rows)
            u = unit(self.rng.standard_normal((len(owner), self.x.shape[1])))
            grad_points = along(self.x[owner], unit(self.theta[owner] + self.beta[owner, None] * u), self.g[owner])
            search_images, search_points = self.searches.queries()
            if not len(owner) and not len(search_images):
                break
            answer = self._ask(np.concatenate([owner, search_images]), np.concatenate([grad_points, search_points]))
            self._gradient(grad_images, owner, u, answer[: len(owner)])
            self._searched(self.searches.answer(search_images, answer[len(owner):]))
            progress(float(np.mean(self.q.queries)) / self.a.max_queries_per_image)

    def _ask(self, images: np.ndarray, flat: np.ndarray) -> np.ndarray:
        return self.q.ask(images, flat.reshape(-1, *self.shape))

    def _check_starts(self, starts: np.ndarray) -> None:
        """One query per start; an adversarial one is binary searched from its own distance, the others
        fall back to the random directions."""
        images = np.arange(len(self.x))
        adv = self._ask(images, starts.astype(np.float32))
        delta = starts - self.x
        radius = np.linalg.norm(delta, axis=1)
        ok = images[adv & (radius > 0)]
        self.phase[ok] = INIT
        self._searched(self.searches.begin(ok, unit(delta[ok]), radius[ok], INIT_TOLERANCE, local=False,
                                           known_adversarial=np.ones(len(ok), bool)))

    def _probe(self) -> None:
        """The reference's initial directions: `directions` Gaussian ones per image (fewer where the budget is
        shorter), all asked in one step; the adversarial ones are then binary searched one after another."""
        images = np.flatnonzero((self.phase == PROBE) & (self.q.remaining() > 0))
        n, d = self.x.shape
        m = self.a.directions
        raw = self.rng.standard_normal((len(images), m, d), dtype=np.float32)
        radius = np.linalg.norm(raw, axis=2).astype(np.float64)
        self.probe_dir = np.zeros((n, m, d), np.float32)
        self.probe_radius = np.zeros((n, m))
        self.probe_adv = np.zeros((n, m), bool)
        self.probe_dir[images] = raw / radius[..., None]
        self.probe_radius[images] = radius
        rows = np.minimum(m, self.q.remaining(images))
        owner = np.repeat(images, rows)
        slot = np.arange(len(owner)) - np.repeat(np.cumsum(rows) - rows, rows)
        if len(owner):
            points = along(self.x[owner], self.probe_dir[owner, slot], self.probe_radius[owner, slot])
            self.probe_adv[owner, slot] = self._ask(owner, points)
        self.phase[images] = INIT
        self.phase[self.phase == PROBE] = DONE  # no budget to probe
        self._next_direction(images)

    def _next_direction(self, images: np.ndarray) -> None:
        """Search the next adversarial probed direction of each image; an image with none left goes on to the
        gradient descent from its best (or stops: no adversarial direction found)."""
        m = self.probe_adv.shape[1]
        later = self.probe_adv[images] & (np.arange(m)[None, :] >= self.next_probe[images, None])
        has = later.any(1)
        j = later.argmax(1)
        over, go = images[~has], images[has]
        self.phase[over] = np.where(np.isfinite(self.g[over]), GRAD, DONE)
        j = j[has]
        self.next_probe[go] = j + 1
        radius = self.probe_radius[go, j]
        start = np.minimum(radius, self.g[go])
        ended = self.searches.begin(go, self.probe_dir[go, j], start, INIT_TOLERANCE, local=False,
                                    known_adversarial=radius <= self.g[go])
        self._searched(ended)

    def _gradient(self, images: np.ndarray, owner: np.ndarray, u: np.ndarray, adv: np.ndarray) -> None:
        """The sign gradient of each image from its answered rows, then the first step of its line search."""
        signed = np.where(adv, -1.0, 1.0)[:, None] * u
        grad = np.zeros_like(self.grad[images])
        pos = np.searchsorted(images, owner)
        np.add.at(grad, pos, signed)
        counts = np.bincount(pos, minlength=len(images))
        self.grad[images] = grad / np.maximum(counts, 1)[:, None]
        self.min_theta[images], self.min_g[images] = self.theta[images], self.g[images]
        self.tries[images] = 0
        self.phase[images] = LS_UP
        self._line_search(images)

    def _line_search(self, images: np.ndarray) -> None:
        self.cand[images] = unit(self.theta[images] - self.alpha[images, None] * self.grad[images])
        self._searched(self.searches.begin(images, self.cand[images], self.min_g[images],
                                           self.beta[images] / 500, local=True))

    def _searched(self, images: np.ndarray) -> None:
        """Images whose boundary search ended: each moves on by its stage."""
        init, up, down = (images[self.phase[images] == p] for p in (INIT, LS_UP, LS_DOWN))
        if len(init):
            better = init[self.searches.result[init] < self.g[init]]
            self.theta[better], self.g[better] = self.searches.theta[better], self.searches.result[better]
            self._next_direction(init)
        if len(up):
            self._ascend(up)
        if len(down):
            self._descend(down)

    def _ascend(self, images: np.ndarray) -> None:
        """α doubles after each try; on while the step improves, else to the smaller steps if none did."""
        r = self.searches.result[images]
        self.alpha[images] *= 2
        self.tries[images] += 1
        better = r < self.min_g[images]
        won = images[better]
        self.min_theta[won], self.min_g[won] = self.cand[won], r[better]
        self._finish(won[self.tries[won] >= LINE_SEARCH_TRIES])
        lost = images[~better]
        self._finish(lost[self.min_g[lost] < self.g[lost]])
        down = lost[self.min_g[lost] >= self.g[lost]]
        self.phase[down] = LS_DOWN
        self.tries[down] = 0
        self.alpha[down] *= 0.25
        self._line_search(np.concatenate([won[self.tries[won] < LINE_SEARCH_TRIES], down]))

    def _descend(self, images: np.ndarray) -> None:
        r = self.searches.result[images]
        better = r < self.g[images]
        won = images[better]
        self.min_theta[won], self.min_g[won] = self.cand[won], r[better]
        self.tries[images] += 1
        lost = images[~better]
        self._finish(np.concatenate([won, lost[self.tries[lost] >= LINE_SEARCH_TRIES]]))
        again = lost[self.tries[lost] < LINE_SEARCH_TRIES]
        self.alpha[again] *= 0.25
        self._line_search(again)

    def _finish(self, images: np.ndarray) -> None:
        """The end of an iteration: (θ, g) moves to the best of its line search; α and β as the reference."""
        stuck = images[self.alpha[images] < MIN_ALPHA]
        self.alpha[stuck] = 1.0
        self.beta[stuck] *= 0.1
        self.theta[images], self.g[images] = self.min_theta[images], self.min_g[images]
        self.iteration[images] += 1
        over = (self.beta[images] < MIN_BETA) | (self.iteration[images] >= self.a.iterations)
        self.phase[images] = np.where(over, DONE, GRAD)
