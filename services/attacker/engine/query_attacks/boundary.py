"""The steps of a decision-based attack near the decision boundary, each ONE oracle call for the rows of every
image in play (HopSkipJump's, and any attack's that walks the same way): a budget-trimmed ask, the binary
search between each clean image and an adversarial point, and the Monte-Carlo estimate of the boundary's
normal from the labels of random perturbations.

Rows are flat (m, d) float arrays; `images` says which image of the `PerImageQueries` each row is for.
"""

from __future__ import annotations

import numpy as np

from bbrange.attacker.engine.query_attacks.budget import PerImageQueries, distances
from bbrange.shared.perturbations import Norm


def ask_trimmed(queries: PerImageQueries, images: np.ndarray, x: np.ndarray, shape: tuple[int, ...],
                ) -> tuple[np.ndarray, np.ndarray]:
    """(adversarial, sent) per row. Rows past their image's remaining budget are dropped before asking, so
    that an unsent row's False is never read as the oracle's answer: callers use `sent` to tell them apart."""
    sent = queries.within_budget(images)
    answer = np.zeros(len(images), bool)
    if sent.any():
        answer[sent] = queries.ask(images[sent], x[sent].reshape(-1, *shape))
    return answer, sent


def project(x0: np.ndarray, x_adv: np.ndarray, alpha: np.ndarray, norm: Norm) -> np.ndarray:
    """The point at `alpha` between each clean row and its adversarial row: the L2 blend (1−α)·x0 + α·x_adv,
    or for L∞ x_adv clipped to the ball of radius α around x0 (the reference's projection)."""
    a = alpha[:, None]
    out = (1.0 - a) * x0 + a * x_adv if norm == "l2" else np.clip(x_adv, x0 - a, x0 + a)
    return np.asarray(out, dtype=np.float32)


def binary_search(queries: PerImageQueries, images: np.ndarray, x0: np.ndarray, x_adv: np.ndarray, norm: Norm,
                  theta: float, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each adversarial row moved to the boundary towards its clean row, to within θ (L2: α ∈ [0, 1] to θ;
    L∞: the radius from its distance to min(dist·θ, θ)): the adversarial end, which every row keeps, and the
    distance of the point the search started from (the reference's `dist_post_update`, which sets δ).

    Every row asks once per halving, all rows in one call; a row whose image ran out of budget stops where
    it is (its adversarial end was answered, so it is still adversarial)."""
    start_dist = distances(x0, x_adv, norm)
    if norm == "l2":
        high, threshold = np.ones(len(x0)), np.full(len(x0), theta)
    else:
        high, threshold = start_dist.copy(), np.minimum(start_dist * theta, theta)
    threshold = np.maximum(threshold, 1e-12)  # a start on the clean image itself (distance 0) converges at once
    low = np.zeros(len(x0))
    live = np.ones(len(x0), bool)
    while True:
        todo = np.flatnonzero(live & ((high - low) / threshold > 1))
        if not len(todo):
            break
        mid = (high[todo] + low[todo]) / 2.0
        adv, sent = ask_trimmed(queries, images[todo], project(x0[todo], x_adv[todo], mid, norm), shape)
        live[todo[~sent]] = False
        high[todo[sent & adv]] = mid[sent & adv]
        low[todo[sent & ~adv]] = mid[sent & ~adv]
    return project(x0, x_adv, high, norm), start_dist


def estimate_normal(queries: PerImageQueries, images: np.ndarray, x: np.ndarray, delta: np.ndarray, num_evals: int,
                    norm: Norm, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """The unit estimate of the boundary's normal at each boundary point x (Chen et al. 2020, eq. 9-10):
    up to `num_evals` random unit directions u_b per image (Gaussian for L2, uniform in [−1, 1]^d for L∞,
    normalised in L2), x + δ·u_b clipped to [0, 1], and the mean of φ(x + δ·u_b)·u_b with φ = ±1, minus the
    baseline mean(φ) when the answers are not all the same (the reference's `fval - mean(fval)`).

    An image gets no more rows than its remaining budget, so every answer used is one the oracle gave."""
    counts = np.minimum(num_evals, queries.remaining(images))
    owner = np.repeat(np.arange(len(images)), counts)
    m, d = len(owner), x.shape[1]
    rv = rng.standard_normal((m, d), dtype=np.float32) if norm == "l2" else rng.uniform(-1.0, 1.0, (m, d)).astype(np.float32)
    rv /= np.maximum(np.linalg.norm(rv, axis=1, keepdims=True), 1e-12)
    step = delta.astype(np.float32)[owner, None]
    perturbed = np.clip(x[owner] + step * rv, 0.0, 1.0).astype(np.float32)
    rv = (perturbed - x[owner]) / step  # the directions actually taken, after clipping
    adv, sent = ask_trimmed(queries, images[owner], perturbed, shape)
    assert sent.all(), "rows were trimmed to the remaining budget"
    fval = 2.0 * adv - 1.0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    mean, grad = np.zeros(len(images)), np.zeros((len(images), d))
    if has.any():
        mean[has] = np.add.reduceat(fval, starts[has]) / counts[has]
        mixed = np.abs(mean) < 1.0  # all +1: mean(u); all −1: −mean(u); both: baseline subtracted
        weights = (fval - np.where(mixed, mean, 0.0)[owner]).astype(np.float32)
        grad[has] = np.add.reduceat(weights[:, None] * rv, starts[has]) / counts[has, None]
    unit: np.ndarray = grad / np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-12)
    return unit
