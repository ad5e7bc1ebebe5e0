"""Per-image query accounting for decision-based attacks, advanced across a whole batch of images.

A decision-based attack (HopSkipJump, Sign-OPT, RayS) asks the oracle one question per query: is this input
adversarial? `PerImageQueries` is the one door through which such an attack asks. Each step sends the queries
of every image still in play as one call of the attack's `LabelBatch` (a `QueryCounter` phase, which splits
it by the endpoint's batch limit and books every input), and keeps, per image:

    queries         how many of its queries the oracle answered (initialisation, binary searches, gradient
                    estimates alike: every input sent is one)
    best            the least distorted adversarial input seen so far, among everything the oracle answered
                    (an image whose budget is spent keeps it)
    at_checkpoints  the distortion of `best` once the image had used each checkpoint's number of queries
                    (inf: no adversarial yet), the curve the results report
    ..._other       the same example's distortion in the other norm (L∞ for an L2 attack, L2 for an L∞ one):
                    the example is chosen by the attack's norm, and the results report both of its distances

so that no attack can report an example the oracle did not confirm, nor a query it did not count.

With an `Evasion` (evasion.py, the adaptive attacker), every row is sent through its random transformation and
what is booked is the row the oracle answered: the transformation changes no count, and the kept example is
adversarial as it is. `offer` then keeps nothing (what it offers was booked, transformed, when it was asked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bbrange.attacker.engine.query_attacks.evasion import Evasion
from bbrange.shared.perturbations import Norm

LabelBatch = Callable[[np.ndarray], np.ndarray]  # labels of a batch of inputs, one query per row
DEFAULT_CHECKPOINTS = (100, 200, 500, 1_000, 2_000, 5_000, 10_000)


def other_norm(norm: Norm) -> Norm:
    """The norm an attack does not minimise, in which its examples are also reported."""
    return "linf" if norm == "l2" else "l2"


def distances(x_clean: np.ndarray, x: np.ndarray, norm: Norm) -> np.ndarray:
    """Per-row L2 or L∞ distance between inputs of the same shape."""
    d = (x.reshape(len(x), -1) - x_clean.reshape(len(x_clean), -1)).astype(np.float64)
    out: np.ndarray = np.sqrt((d * d).sum(1)) if norm == "l2" else np.abs(d).max(1)
    return out


@dataclass(frozen=True)
class DecisionResult:
    """What a decision-based attack found for each image."""

    x_adv: np.ndarray  # (N, ...) best adversarial per image; the clean image where none was found
    success: np.ndarray  # (N,) bool: an adversarial was found
    distortion: np.ndarray  # (N,) its distortion in the attack's norm (inf where none)
    queries: np.ndarray  # (N,) queries the oracle answered for the image
    checkpoints: tuple[int, ...]
    at_checkpoints: np.ndarray  # (N, K) distortion of the best adversarial within each checkpoint's queries
    norm: Norm
    stop_reason: str | None = None  # the campaign budget ran out before every image was done
    # The same examples measured in the other norm (None: a result built without them)
    distortion_other: np.ndarray | None = None  # (N,)
    at_checkpoints_other: np.ndarray | None = None  # (N, K)

    @property
    def other_norm(self) -> Norm:
        return other_norm(self.norm)


class PerImageQueries:
    """The queries of N images, each with its own budget, asked through one `LabelBatch`.

    `adversarial(labels, images)` says which answers count as adversarial for which image (untargeted: the
    label differs from the oracle's clean label; targeted: it is the image's target)."""

    def __init__(self, label_batch: LabelBatch, x_clean: np.ndarray, adversarial: Callable[[np.ndarray, np.ndarray],
                 np.ndarray], *, norm: Norm, max_queries_per_image: int,
                 checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS, evasion: Evasion | None = None,
                 evasion_seed: int = 0) -> None:
        if list(checkpoints) != sorted(set(checkpoints)) or (len(checkpoints) and checkpoints[0] < 1):
            raise ValueError("checkpoints must be positive and strictly increasing")
        self._label_batch = label_batch
        self._adversarial = adversarial
        self.evasion = evasion
        self._evasion_rng = np.random.default_rng(evasion_seed)  # its own stream: the attack's draws stay the same
        self.x_clean = np.asarray(x_clean, dtype=np.float32)
        self.norm: Norm = norm
        self.max_queries = int(max_queries_per_image)
        self.checkpoints = tuple(int(c) for c in checkpoints)
        n = len(self.x_clean)
        self.queries = np.zeros(n, np.int64)
        self.best = self.x_clean.copy()
        self.best_distortion = np.full(n, np.inf)
        self.at_checkpoints = np.full((n, len(self.checkpoints)), np.inf)
        self.other_norm: Norm = other_norm(norm)
        self.best_distortion_other = np.full(n, np.inf)
        self.at_checkpoints_other = np.full((n, len(self.checkpoints)), np.inf)

    def remaining(self, images: np.ndarray | None = None) -> np.ndarray:
        """Queries each image (all, or `images`) may still spend."""
        q = self.queries if images is None else self.queries[images]
        return np.maximum(self.max_queries - q, 0)

    def active(self) -> np.ndarray:
        """Indices of the images with budget left."""
        return np.flatnonzero(self.queries < self.max_queries)

    def ask(self, images: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Whether each row of x (a query for image images[i]) is adversarial: one call to the oracle.

        Rows beyond an image's remaining budget are not sent and come back False, so an attack may ask for
        more than is left and simply gets no answer for the excess. Raises what the `LabelBatch` raises
        (a spent campaign budget) with nothing booked for the refused call."""
        images = np.asarray(images, dtype=np.int64)
        x = np.asarray(x, dtype=np.float32)
        if len(images) != len(x):
            raise ValueError(f"{len(images)} image indices for {len(x)} queries")
        sent = self.within_budget(images)
        answer = np.zeros(len(images), bool)
        if not sent.any():
            return answer
        idx, xs = images[sent], x[sent]
        if self.evasion is not None:
            xs = self.evasion.apply(xs, self._evasion_rng)
        labels = np.asarray(self._label_batch(xs))
        answer[sent] = is_adv = np.asarray(self._adversarial(labels, idx), dtype=bool)
        self._book(idx, xs, is_adv)
        return answer

    def offer(self, images: np.ndarray, x: np.ndarray) -> None:
        """Inputs already known to be adversarial (asked before, e.g. a binary search's adversarial end):
        kept as the best of their image where less distorted, at no query. With an evasion, nothing: the
        oracle answered their transformed form, booked when they were asked."""
        if self.evasion is not None:
            return
        images = np.asarray(images, dtype=np.int64)
        self._improve(images, np.asarray(x, dtype=np.float32), np.ones(len(images), bool))

    def result(self, stop_reason: str | None = None) -> DecisionResult:
        """The best per image; a checkpoint an image never reached carries what it had when it stopped."""
        at, at_other = self.at_checkpoints.copy(), self.at_checkpoints_other.copy()
        for k, c in enumerate(self.checkpoints):
            short = self.queries < c
            at[short, k] = self.best_distortion[short]
            at_other[short, k] = self.best_distortion_other[short]
        return DecisionResult(self.best.copy(), np.isfinite(self.best_distortion), self.best_distortion.copy(),
                              self.queries.copy(), self.checkpoints, at, self.norm, stop_reason,
                              self.best_distortion_other.copy(), at_other)

    def within_budget(self, images: np.ndarray) -> np.ndarray:
        """Which rows fit their image's remaining budget, taken in order."""
        return rank_within_image(images) < self.remaining(images)

    def _book(self, images: np.ndarray, x: np.ndarray, is_adv: np.ndarray) -> None:
        before = self.queries[images]
        np.add.at(self.queries, images, 1)
        after = self.queries[images]
        rank = rank_within_image(images)
        # A checkpoint crossed within this call sees only the rows its image sent before reaching it.
        for k, c in enumerate(self.checkpoints):
            crossing = (before < c) & (after >= c)
            if not crossing.any():
                continue
            within = crossing & (rank < c - before)
            self._improve(images[within], x[within], is_adv[within])
            crossed = np.unique(images[crossing])
            self.at_checkpoints[crossed, k] = self.best_distortion[crossed]
            self.at_checkpoints_other[crossed, k] = self.best_distortion_other[crossed]
        self._improve(images, x, is_adv)

    def _improve(self, images: np.ndarray, x: np.ndarray, is_adv: np.ndarray) -> None:
        if not is_adv.any():
            return
        images, x = images[is_adv], x[is_adv]
        d = distances(self.x_clean[images], x, self.norm)
        # Per image, its least distorted row of the call (the earliest among equals), kept where it improves.
        order = np.lexsort((np.arange(len(images)), d, images))
        first = order[np.r_[True, images[order][1:] != images[order][:-1]]]
        better = first[d[first] < self.best_distortion[images[first]]]
        if not len(better):
            return
        won = images[better]
        self.best_distortion[won] = d[better]
        self.best_distortion_other[won] = distances(self.x_clean[won], x[better], self.other_norm)
        self.best[won] = x[better]


def rank_within_image(images: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows of the call belong to the same image."""
    order = np.argsort(images, kind="stable")
    sorted_images = images[order]
    first = np.searchsorted(sorted_images, sorted_images, side="left")
    rank = np.empty(len(images), np.int64)
    rank[order] = np.arange(len(images)) - first
    return rank
