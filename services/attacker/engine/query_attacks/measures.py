"""What a query attack measures of its set, from what its search found (`DecisionResult`): the distortion against
queries used (median and interquartile range over the images at each checkpoint) and the success at fixed
perturbation sizes beside random noise of the same norm and size on the same images (phase "baseline"), in the
norm the attack minimises and again in the other one (the same examples, chosen by the attack's norm, measured
in L2 and L∞; one noise draw per image per size of each norm).

An image with no adversarial yet at a checkpoint counts at the largest distortion its domain allows (L2: the
diagonal of [0, 1]^D, L∞: 1), so that the quartiles are over every image, not only those already fooled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bbrange.attacker.engine.attack import CraftingContext
from bbrange.attacker.engine.errors import BudgetExhausted
from bbrange.attacker.engine.query_attacks.budget import DecisionResult
from bbrange.attacker.engine.query_attacks.crafting import adversarial_criterion
from bbrange.shared.perturbations import Norm, noise_of_size

# Success at these sizes (MNIST's customary ones), per norm the attack minimises.
SUCCESS_SIZES: dict[str, tuple[float, ...]] = {"l2": (1.5, 2.0, 3.0), "linf": (0.1, 0.2, 0.3)}
LABEL_BATCH = 1000
BAD_QUERIES = (100, 500, 1_000)  # the bad-query figure's points (Debenedetti, Carlini & Tramèr, SaTML 2024)
NOT_RELABELLED = ("the examples were confirmed adversarial by the oracle during the search and are not labelled "
                  "again (no evaluation queries): transfer_rate is the search's success rate")


@dataclass(frozen=True)
class QueryMeasures:
    norm: Norm
    checkpoints: list[int]
    median: list[float]
    q1: list[float]
    q3: list[float]
    sizes: list[float]
    success_rates: list[float]
    noise_rates: list[float | None]
    queries: np.ndarray  # per image
    at_checkpoints: np.ndarray  # (images, checkpoints) each image's distortion after each checkpoint's queries
    ceiling: float  # the distortion counted for an image with no adversarial yet
    chunk: int  # images searched side by side, chunk after chunk
    stop_reason: str | None = None  # the budget ran out during the search or its noise baseline
    other: QueryMeasures | None = None  # the same examples in the other norm (its own `other` None)

    def distortion_by_queries(self) -> dict[str, Any]:
        return {"norm": self.norm, "queries": self.checkpoints, "median": self.median, "q1": self.q1, "q3": self.q3}

    def success_by_size(self) -> dict[str, Any]:
        return {"norm": self.norm, "points": [
            {"size": s, "success_rate": r, "noise_rate": nr}
            for s, r, nr in zip(self.sizes, self.success_rates, self.noise_rates, strict=True)]}

    def after_bad_queries(self, attack_queries_at_flag: int) -> dict[str, Any]:
        """The bad-query figure (Debenedetti, Carlini & Tramèr, "Evading Black-box Classifiers Without Breaking
        Eggs", SaTML 2024) from the account flag the oracle announced: a query answered after the flag is a bad
        one. `attack_queries_at_flag`: the search's queries answered before the flag (all of them if it came
        later). Each image's own count at the flag follows from the order of the search (chunks one after another,
        the images of a chunk side by side, each its share of the chunk's queries); the distortion it had after
        b bad queries is read at the last checkpoint within its count at the flag + b (a lower bound on what b bad
        queries bought: the checkpoints are coarse), its final one if it stopped sooner."""
        at_flag = queries_at_flag(self.queries, self.chunk, attack_queries_at_flag)
        checkpoints = np.asarray(self.checkpoints)
        rows = np.arange(len(at_flag))
        points = []
        for bad in BAD_QUERIES:
            k = np.searchsorted(checkpoints, at_flag + bad, side="right") - 1
            reached = np.where(k >= 0, self.at_checkpoints[rows, np.maximum(k, 0)], self.ceiling)
            points.append({"bad_queries": bad, "median": round(float(np.median(reached)), 6) if len(rows) else None})
        return {"norm": self.norm, "attack_queries_at_flag": attack_queries_at_flag,
                "images_with_bad_queries": int((at_flag < self.queries).sum()),
                "median_queries_per_image_at_flag": float(np.median(at_flag)) if len(rows) else None,
                "points": points}

    def as_results(self) -> dict[str, Any]:
        return {
            "distortion_by_queries": self.distortion_by_queries(),
            "success_by_size": self.success_by_size(),
            "distortion_by_queries_other": self.other.distortion_by_queries() if self.other else None,
            "success_by_size_other": self.other.success_by_size() if self.other else None,
            "queries_per_image": {"median": float(np.median(self.queries)) if len(self.queries) else None,
                                  "max": int(self.queries.max()) if len(self.queries) else None,
                                  "total": int(self.queries.sum())},
            "evaluation_note": NOT_RELABELLED,
            "query_attack_stop_reason": self.stop_reason,
        }


def queries_at_flag(queries: np.ndarray, chunk: int, flagged_at: int) -> np.ndarray:
    """Each image's own query count when the search's `flagged_at`-th query was answered: the images are searched
    `chunk` at a time, chunk after chunk, and within a chunk side by side (each at its share of the chunk's)."""
    at = np.zeros(len(queries), np.float64)
    before = 0
    for start in range(0, len(queries), max(chunk, 1)):
        q = queries[start : start + chunk].astype(np.float64)
        total = float(q.sum())
        share = min(max((flagged_at - before) / total, 0.0), 1.0) if total else 1.0
        at[start : start + chunk] = share * q
        before += int(total)
    return at


def query_measures(context: CraftingContext, result: DecisionResult, targets: np.ndarray | None,
                   max_queries_per_image: int, sizes: tuple[float, ...] | None = None,
                   chunk: int | None = None) -> QueryMeasures:
    # Checkpoints past the per-image budget would only repeat the last point.
    keep = [k for k, c in enumerate(result.checkpoints) if c <= max_queries_per_image] or \
        list(range(len(result.checkpoints)))
    chunk = chunk or max(len(result.queries), 1)
    own = _in_norm(context, result, targets, keep, result.norm, result.distortion, result.at_checkpoints,
                   sizes or SUCCESS_SIZES[result.norm], result.stop_reason, chunk)
    if result.distortion_other is None or result.at_checkpoints_other is None:
        return own
    other = _in_norm(context, result, targets, keep, result.other_norm, result.distortion_other,
                     result.at_checkpoints_other, SUCCESS_SIZES[result.other_norm], own.stop_reason, chunk)
    return replace(own, other=other, stop_reason=other.stop_reason)


def _in_norm(context: CraftingContext, result: DecisionResult, targets: np.ndarray | None, keep: list[int],
             norm: Norm, distortion: np.ndarray, at_checkpoints: np.ndarray, sizes: tuple[float, ...],
             stop: str | None, chunk: int) -> QueryMeasures:
    """The curve and the success at `sizes` of the examples measured in `norm`; the noise baseline only while
    the budget lasts (`stop` None)."""
    features = int(np.prod(context.x.shape[1:])) if context.x.ndim > 1 else 1
    ceiling = float(np.sqrt(features)) if norm == "l2" else 1.0
    at = np.minimum(at_checkpoints[:, keep], ceiling)
    quartiles = np.quantile(at, [0.25, 0.5, 0.75], axis=0) if len(at) else np.zeros((3, len(keep)))
    success = [float(np.mean(result.success & (distortion <= s))) if len(result.success) else 0.0 for s in sizes]
    noise_rates: list[float | None] = [None] * len(sizes)
    if context.noise_baseline and stop is None:
        noise_rates, stop = _noise_at_sizes(context, targets, norm, sizes)
    return QueryMeasures(norm, [result.checkpoints[k] for k in keep], _rounded(quartiles[1]),
                         _rounded(quartiles[0]), _rounded(quartiles[2]), list(sizes), success, noise_rates,
                         result.queries, at, ceiling, chunk, stop)


def _noise_at_sizes(context: CraftingContext, targets: np.ndarray | None, norm: Norm,
                    sizes: tuple[float, ...]) -> tuple[list[float | None], str | None]:
    """The same success criterion for the images moved by random noise of each size, labelled by the oracle."""
    adversarial = adversarial_criterion(context.label_before, targets)
    rng = np.random.default_rng(context.seed + 1)
    rates: list[float | None] = []
    for size in sizes:
        x_noise = noise_of_size(context.x, size, norm, rng)
        try:
            labels = np.concatenate([context.counter.label(x_noise[i : i + LABEL_BATCH], "baseline")
                                     for i in range(0, len(x_noise), LABEL_BATCH)] or [np.zeros(0, np.int64)])
        except BudgetExhausted as e:
            return rates + [None] * (len(sizes) - len(rates)), f"{e}; the noise baseline at sizes ≥ {size:g} is missing"
        rates.append(float(np.mean(adversarial(labels, np.arange(len(labels))))) if len(labels) else None)
    return rates, None


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]
