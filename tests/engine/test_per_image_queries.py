"""The one door of decision-based attacks: every input sent is counted for its image, no image spends past
its budget, the best adversarial is kept, and the distortion curve only uses the queries before each point."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from bbrange.attacker.engine.query_attacks.budget import PerImageQueries


def scalar_oracle(sent: list[int]) -> Callable[[np.ndarray], np.ndarray]:
    """Label 1 when the mean pixel is above 0.5, else 0; records the size of each call."""
    def label(x: np.ndarray) -> np.ndarray:
        sent.append(len(x))
        return (x.reshape(len(x), -1).mean(1) > 0.5).astype(np.int64)
    return label


def make(sent: list[int], n: int = 3, budget: int = 5, checkpoints: Sequence[int] = (2, 4)) -> PerImageQueries:
    x = np.zeros((n, 1, 2, 2), np.float32)
    return PerImageQueries(scalar_oracle(sent), x, lambda labels, images: labels != 0, norm="linf",
                           max_queries_per_image=budget, checkpoints=checkpoints)


def test_one_call_per_step_and_every_row_is_counted_for_its_image() -> None:
    sent: list[int] = []
    q = make(sent)
    images = np.array([0, 0, 1, 2])
    x = np.stack([np.full((1, 2, 2), v, np.float32) for v in (0.9, 0.2, 0.7, 0.1)])
    assert q.ask(images, x).tolist() == [True, False, True, False]
    assert sent == [4] and q.queries.tolist() == [2, 1, 1]
    assert q.best_distortion[0] == pytest.approx(0.9) and q.best_distortion[1] == pytest.approx(0.7)
    assert np.isinf(q.best_distortion[2])


def test_rows_past_an_image_budget_are_not_sent() -> None:
    sent: list[int] = []
    q = make(sent, budget=3)
    x = np.full((5, 1, 2, 2), 0.9, np.float32)
    answer = q.ask(np.array([0, 0, 0, 0, 1]), x)
    assert sent == [4] and answer.tolist() == [True, True, True, False, True]
    assert q.queries.tolist() == [3, 1, 0] and q.active().tolist() == [1, 2]
    assert not q.ask(np.array([0]), x[:1]).any() and sent == [4]


def test_a_checkpoint_sees_only_the_queries_sent_before_it() -> None:
    sent: list[int] = []
    q = make(sent, n=1, budget=10, checkpoints=(2, 4))
    # rows 1-2 reach the checkpoint at 2 queries; the better example is the third query
    x = np.stack([np.full((1, 2, 2), v, np.float32) for v in (0.9, 0.8, 0.6)])
    q.ask(np.zeros(3, np.int64), x)
    result = q.result()
    assert result.at_checkpoints[0, 0] == pytest.approx(0.8)
    # never reached 4 queries: the checkpoint carries what the image had when it stopped
    assert result.at_checkpoints[0, 1] == pytest.approx(0.6)
    assert result.queries.tolist() == [3] and result.success.tolist() == [True]


def test_a_refused_call_books_nothing() -> None:
    q = PerImageQueries(lambda x: (_ for _ in ()).throw(RuntimeError("spent")), np.zeros((1, 1, 2, 2), np.float32),
                        lambda labels, images: labels != 0, norm="l2", max_queries_per_image=5)
    with pytest.raises(RuntimeError):
        q.ask(np.array([0]), np.ones((1, 1, 2, 2), np.float32))
    assert q.queries.tolist() == [0]


def test_checkpoints_must_increase() -> None:
    with pytest.raises(ValueError, match="increasing"):
        make([], checkpoints=(4, 2))


def test_the_best_example_is_chosen_by_the_attack_norm_and_measured_in_both() -> None:
    x = np.zeros((1, 1, 2, 2), np.float32)
    q = PerImageQueries(lambda x: np.ones(len(x), np.int64), x, lambda labels, images: labels != 0, norm="l2",
                        max_queries_per_image=10, checkpoints=(1, 2))
    spread = np.full((1, 1, 2, 2), 0.3, np.float32)  # L2 0.6, L∞ 0.3
    peak = np.zeros((1, 1, 2, 2), np.float32)
    peak[0, 0, 0, 0] = 0.5  # L2 0.5 (better in L2), L∞ 0.5 (worse in L∞)
    q.ask(np.zeros(2, np.int64), np.concatenate([spread, peak]))
    result = q.result()
    assert result.other_norm == "linf" and result.distortion[0] == pytest.approx(0.5)
    assert result.distortion_other is not None and result.distortion_other[0] == pytest.approx(0.5)
    assert result.at_checkpoints_other is not None
    assert result.at_checkpoints[0].tolist() == pytest.approx([0.6, 0.5])
    assert result.at_checkpoints_other[0].tolist() == pytest.approx([0.3, 0.5])  # the L2-best example's L∞


@pytest.mark.parametrize("seed", range(5))
def test_the_best_is_the_least_distorted_confirmed_row_the_earliest_among_equals(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, rows = 6, 80
    x_clean = np.zeros((n, 1, 2, 2), np.float32)
    images = rng.integers(0, n, rows)
    # few distinct sizes, so that ties occur
    x = (rng.integers(1, 4, (rows, 1, 1, 1)) / 4 * np.ones((rows, 1, 2, 2))).astype(np.float32)
    x[:, 0, 0, 0] += rng.integers(0, 2, rows) / 8  # rows of equal distance but different content
    adv = rng.random(rows) < 0.6
    q = PerImageQueries(lambda batch: np.zeros(len(batch), np.int64), x_clean,
                        lambda labels, idx: adv[: len(idx)] if len(idx) == rows else np.ones(len(idx), bool),
                        norm="l2", max_queries_per_image=rows)
    q.ask(images, x)
    # the reference: one row at a time, a strictly better row replaces the best
    best_d = np.full(n, np.inf)
    best = x_clean.copy()
    for i, row, a in zip(images, x, adv, strict=True):
        d = float(np.sqrt(((row - x_clean[i]) ** 2).sum()))
        if a and d < best_d[i]:
            best_d[i], best[i] = d, row
    assert np.allclose(q.best_distortion, best_d) and np.array_equal(q.best, best)
    linf = np.abs((best - x_clean).reshape(n, -1)).max(1)
    found = np.isfinite(best_d)
    assert np.allclose(q.best_distortion_other[found], linf[found])
