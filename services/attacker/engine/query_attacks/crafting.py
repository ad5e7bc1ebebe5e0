"""How a query attack crafts a set: its images advanced `batch_size` at a time through one `PerImageQueries` per
chunk, every question asked through the campaign's counter under the "attack" phase, and a campaign budget that
runs out mid-search ending the search with each image's best adversarial so far."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bbrange.attacker.engine.attack import CraftedSet, CraftingContext
from bbrange.attacker.engine.errors import BudgetExhausted
from bbrange.attacker.engine.query_attacks.budget import DecisionResult, PerImageQueries
from bbrange.attacker.engine.query_attacks.evasion import Evasion
from bbrange.shared.perturbations import Norm

Search = Callable[[PerImageQueries, "np.ndarray | None", np.random.Generator, Callable[[float], None]], None]


def adversarial_criterion(label_before: np.ndarray, targets: np.ndarray | None) -> Callable[[np.ndarray, np.ndarray],
                                                                                              np.ndarray]:
    """Untargeted: the oracle's label differs from its label of the clean image; targeted: it is the target."""
    if targets is None:
        return lambda labels, images: np.asarray(labels != label_before[images])
    return lambda labels, images: np.asarray(labels == targets[images])


def target_starts(x: np.ndarray, label_before: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each image, the nearest (L2) image of the set that the oracle labelled as its target (its labels are
    known from the agreement phase: no query); the clean image where there is none (the search's check of its
    start fails there and it falls back to its own initialisation)."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    squared = (flat * flat).sum(1)
    starts = x.copy()
    for t in np.unique(targets):
        rows, pool = np.flatnonzero(targets == t), np.flatnonzero(label_before == t)
        if not len(pool):
            continue
        d = squared[rows, None] - 2 * flat[rows] @ flat[pool].T + squared[None, pool]
        starts[rows] = x[pool[d.argmin(1)]]
    return starts


def craft_by_queries(context: CraftingContext, targets: np.ndarray | None, search: Search, *, norm: Norm,
                     max_queries_per_image: int, checkpoints: tuple[int, ...], batch_size: int,
                     progress: Callable[[float], None], starts: np.ndarray | None = None,
                     evasion: Evasion | None = None) -> CraftedSet:
    """`starts`: a start per image believed adversarial (the hybrid's transferred examples), which the search
    checks before relying on it; by default a targeted attack's nearest image of its target, else none.
    `evasion`: every query sent through its random transformation (evasion.py), drawn from the campaign's seed."""
    x, n = context.x, len(context.x)
    if n == 0:
        return CraftedSet(x.copy(), np.zeros(0, np.int64), None, None, np.zeros(0, np.int64))
    if starts is None and targets is not None:
        starts = target_starts(x, context.label_before, targets)
    rng = np.random.default_rng(context.seed)
    parts: list[DecisionResult] = []
    stop_reason = None
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        queries = PerImageQueries(lambda q: context.counter.label(q, "attack"), x[rows],
                                  adversarial_criterion(context.label_before[rows],
                                                        None if targets is None else targets[rows]),
                                  norm=norm, max_queries_per_image=max_queries_per_image, checkpoints=checkpoints,
                                  evasion=evasion, evasion_seed=context.seed + start)
        if stop_reason is None:
            try:
                search(queries, None if starts is None else starts[rows], rng, _chunk_progress(progress, start,
                                                                                               rows.stop - start, n))
            except BudgetExhausted as e:
                stop_reason = (f"{e}; the search stopped with {rows.stop} of {n} images started, each keeping its "
                               "best adversarial so far")
        parts.append(queries.result(stop_reason))
    progress(1.0)
    result = joined(parts, checkpoints, norm, stop_reason)
    labels = np.where(result.success, -1, context.label_before).astype(np.int64)
    if targets is not None:
        labels[result.success] = targets[result.success]
    return CraftedSet(result.x_adv.astype(np.float32, copy=False), labels, result, stop_reason, result.queries)


def _chunk_progress(progress: Callable[[float], None], start: int, size: int, n: int) -> Callable[[float], None]:
    return lambda fraction: progress((start + min(max(fraction, 0.0), 1.0) * size) / n)


def joined(parts: list[DecisionResult], checkpoints: tuple[int, ...], norm: Norm,
           stop_reason: str | None) -> DecisionResult:
    return DecisionResult(np.concatenate([p.x_adv for p in parts]), np.concatenate([p.success for p in parts]),
                          np.concatenate([p.distortion for p in parts]), np.concatenate([p.queries for p in parts]),
                          checkpoints, np.concatenate([p.at_checkpoints for p in parts]), norm, stop_reason,
                          _joined_other([p.distortion_other for p in parts]),
                          _joined_other([p.at_checkpoints_other for p in parts]))


def _joined_other(parts: list[np.ndarray | None]) -> np.ndarray | None:
    return None if any(p is None for p in parts) else np.concatenate([p for p in parts if p is not None])
