from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bbrange.attacker.engine import (
    BudgetExhausted,
    CallableOracle,
    InProcessOracle,
    LabelOracle,
    PartiallyAnswered,
    QueryCounter,
)


def tiny_oracle() -> InProcessOracle:
    torch.manual_seed(0)
    return InProcessOracle(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), (1, 2, 2), 3)


def batch(n: int) -> np.ndarray:
    return np.random.default_rng(n).random((n, 1, 2, 2), dtype=np.float32)


def test_in_process_oracle_returns_int64_labels_only() -> None:
    oracle = tiny_oracle()
    assert isinstance(oracle, LabelOracle)
    labels = oracle.label(batch(7))
    assert labels.dtype == np.int64 and labels.shape == (7,)
    assert set(labels.tolist()) <= {0, 1, 2}
    # The model is not part of the public surface an attack could reach for.
    assert not any(isinstance(getattr(oracle, n), nn.Module) for n in dir(oracle) if not n.startswith("_"))
    with pytest.raises(ValueError):
        oracle.label(np.zeros((2, 1, 3, 3), dtype=np.float32))


def test_counter_counts_every_labelled_input_per_phase() -> None:
    counter = QueryCounter(tiny_oracle())
    counter.label(batch(5))
    counter.label(batch(3), "agreement")
    counter.label(batch(4), "evaluation")
    counter.label(batch(0))
    assert counter.used("labelling") == 5
    assert counter.used("agreement") == 3
    assert counter.used("evaluation") == 4
    assert counter.total == 12


def test_budget_is_exact_and_a_refused_request_costs_nothing() -> None:
    calls: list[int] = []
    oracle = tiny_oracle()

    class Spy:
        input_shape, num_classes = oracle.input_shape, oracle.num_classes

        def label(self, x: np.ndarray) -> np.ndarray:
            calls.append(len(x))
            return oracle.label(x)

    counter = QueryCounter(Spy(), budget=10)
    counter.label(batch(6))
    with pytest.raises(BudgetExhausted) as info:
        counter.label(batch(5))
    assert (info.value.budget, info.value.used, info.value.requested) == (10, 6, 5)
    assert calls == [6]  # nothing of the refused request reached the oracle
    counter.label(batch(4))
    assert counter.total == 10 and counter.remaining() == 0
    with pytest.raises(BudgetExhausted):
        counter.label(batch(1), "evaluation")


def test_refusals_are_counted_by_whose_budget() -> None:
    """The counter's own refusals, and the oracle's (a BudgetExhausted from it, whole or after part of a call)."""

    class SpentOracle(FlakyOracle):
        def label(self, x: np.ndarray) -> np.ndarray:
            try:
                raise BudgetExhausted(100, 100, len(x), "labelling")
            except BudgetExhausted as e:
                if self.answered:
                    raise PartiallyAnswered(self.answered) from e
                raise

    counter = QueryCounter(SpentOracle(answered=0), budget=5)
    with pytest.raises(BudgetExhausted):
        counter.label(batch(6), "evaluation")
    with pytest.raises(BudgetExhausted):
        counter.label(batch(2), "baseline")
    assert counter.usage.refused == {"labelling": 0, "agreement": 0, "attack": 0, "evaluation": 1, "baseline": 0}
    assert counter.usage.refused_by_oracle == {"labelling": 0, "agreement": 0, "attack": 0, "evaluation": 0, "baseline": 1}
    partly = QueryCounter(SpentOracle(answered=3))
    with pytest.raises(BudgetExhausted):
        partly.label(batch(6))
    assert partly.usage.refused_by_oracle["labelling"] == 1 and partly.used("labelling") == 3


def test_budget_can_cover_only_some_phases() -> None:
    counter = QueryCounter(tiny_oracle(), budget=2, budgeted_phases=["labelling"])
    counter.label(batch(2))
    counter.label(batch(9), "evaluation")
    assert counter.remaining("evaluation") is None
    assert counter.total == 11


class FlakyOracle:
    """Answers `answered` inputs of a call, then fails the way a remote oracle fails half way."""

    input_shape = (1, 2, 2)
    num_classes = 3

    def __init__(self, answered: int) -> None:
        self.answered = answered

    def label(self, x: np.ndarray) -> np.ndarray:
        try:
            raise ConnectionError("the oracle went away")
        except ConnectionError as e:
            raise PartiallyAnswered(self.answered) from e


def test_a_partly_answered_call_is_counted_and_its_own_error_surfaces() -> None:
    seen: list[tuple[str, int]] = []
    counter = QueryCounter(FlakyOracle(answered=7), after=lambda phase, n: seen.append((phase, n)))
    with pytest.raises(ConnectionError, match="went away"):
        counter.label(batch(10), "evaluation")
    assert counter.used("evaluation") == 7 and seen == [("evaluation", 7)]


def test_before_runs_ahead_of_every_call_and_can_stop_it() -> None:
    class Stop(Exception):
        pass

    def refuse(phase: str, n: int) -> None:
        raise Stop(f"{phase} {n}")

    counter = QueryCounter(tiny_oracle(), before=refuse)
    with pytest.raises(Stop, match="labelling 4"):
        counter.label(batch(4))
    assert counter.total == 0


def test_a_callable_returning_scores_only_gives_labels() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.9, 0.05, 0.05]])
    oracle = CallableOracle(lambda x: scores[: len(x)], (1, 2, 2), 3)
    assert isinstance(oracle, LabelOracle)
    labels = QueryCounter(oracle).label(batch(2))
    assert labels.tolist() == [1, 0] and labels.dtype == np.int64
