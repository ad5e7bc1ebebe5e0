"""The attacker's only window on the oracle: labels for inputs, every input counted.

The attack never sees the oracle's weights, logits or probabilities. `LabelOracle` is the whole
contract: an HTTP client implements it in the campaign service, `InProcessOracle` wraps a torch model
and `CallableOracle` any function that returns labels (a notebook's own client, say). `QueryCounter`
sits in front of any of them to count queries per phase, to enforce an exact budget and to let a
caller watch (or interrupt) every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.errors import QUERY_PHASES, BudgetExhausted, PartiallyAnswered, QueryPhase
from bbrange.shared.devices import as_batch

InputShape = tuple[int, int, int]


@runtime_checkable
class LabelOracle(Protocol):
    """Labels only. `label` takes float32 NCHW in [0, 1] and returns one int64 label per input.

    An implementation that answers one call in several requests and fails after some were answered
    raises `PartiallyAnswered(answered)` from the error that stopped it, so that the inputs it was
    charged for are counted.
    """

    @property
    def input_shape(self) -> InputShape: ...

    @property
    def num_classes(self) -> int: ...

    def label(self, x: np.ndarray) -> np.ndarray: ...


def check_batch(x: np.ndarray, input_shape: InputShape) -> np.ndarray:
    """x as contiguous float32, or ValueError when it is not a batch of `input_shape` images."""
    x = np.asarray(x)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"expected a batch of shape (N, {', '.join(map(str, input_shape))}), got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


class CallableOracle:
    """Any function from a float32 NCHW batch in [0, 1] to labels, as a `LabelOracle`.

    Whatever the function returns is reduced to one integer label per input: scores of shape
    (N, classes) are turned into their argmax, so nothing more than a label reaches the attack.
    """

    def __init__(self, labels_of: Callable[[np.ndarray], np.ndarray], input_shape: InputShape,
                 num_classes: int) -> None:
        self._labels_of = labels_of
        self._input_shape = input_shape
        self._num_classes = num_classes

    @property
    def input_shape(self) -> InputShape:
        return self._input_shape

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def label(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x, self.input_shape)
        answer = np.asarray(self._labels_of(x))
        if answer.ndim == 2:
            answer = answer.argmax(1)
        return answer.astype(np.int64).reshape(-1)


class InProcessOracle(CallableOracle):
    """A torch classifier behind the label-only interface: argmax is all that leaves this object."""

    def __init__(
        self,
        model: nn.Module,
        input_shape: InputShape,
        num_classes: int,
        device: torch.device | None = None,
        batch_size: int = 1000,
    ) -> None:
        on = device or torch.device("cpu")
        # Only the closure holds the model, so that attack code cannot reach it through the oracle by accident.
        held = model.to(on).eval()

        @torch.no_grad()
        def labels_of(x: np.ndarray) -> np.ndarray:
            if len(x) == 0:
                return np.zeros(0, dtype=np.int64)
            labels = [held(as_batch(np.clip(x[i : i + batch_size], 0.0, 1.0), on)).argmax(1).cpu()
                      for i in range(0, len(x), batch_size)]
            return torch.cat(labels).numpy()

        super().__init__(labels_of, input_shape, num_classes)


@dataclass
class QueryUsage:
    by_phase: dict[QueryPhase, int] = field(default_factory=lambda: dict.fromkeys(QUERY_PHASES, 0))
    # Requests refused for want of budget: by this counter's own budget, and by the oracle's (BudgetExhausted from it).
    refused: dict[QueryPhase, int] = field(default_factory=lambda: dict.fromkeys(QUERY_PHASES, 0))
    refused_by_oracle: dict[QueryPhase, int] = field(default_factory=lambda: dict.fromkeys(QUERY_PHASES, 0))

    @property
    def total(self) -> int:
        return sum(self.by_phase.values())


BeforeQuery = Callable[[QueryPhase, int], None]
AfterQuery = Callable[[QueryPhase, int], None]


class QueryCounter:
    """Counts every input sent to the oracle, per phase, and refuses to go past `budget`.

    The budget covers the phases in `budgeted_phases` (all of them by default, since a deployed
    oracle charges every query). A request that does not fit is refused whole, before anything is
    sent, so the budget is never overrun and never partly spent by a refused request. `before` is
    called ahead of every call (it may raise to stop the attack there); `after` with the number of
    inputs answered, also when a call was cut short after part of it was answered.
    """

    def __init__(
        self,
        oracle: LabelOracle,
        budget: int | None = None,
        budgeted_phases: Iterable[QueryPhase] = QUERY_PHASES,
        *,
        before: BeforeQuery | None = None,
        after: AfterQuery | None = None,
    ) -> None:
        if budget is not None and budget < 0:
            raise ValueError("budget must be >= 0")
        self._oracle = oracle
        self.budget = budget
        self.budgeted_phases = frozenset(budgeted_phases)
        self.usage = QueryUsage()
        self._before = before
        self._after = after

    @property
    def input_shape(self) -> InputShape:
        return self._oracle.input_shape

    @property
    def num_classes(self) -> int:
        return self._oracle.num_classes

    @property
    def total(self) -> int:
        return self.usage.total

    def used(self, phase: QueryPhase) -> int:
        return self.usage.by_phase[phase]

    @property
    def budgeted_used(self) -> int:
        return sum(n for p, n in self.usage.by_phase.items() if p in self.budgeted_phases)

    def remaining(self, phase: QueryPhase = "labelling") -> int | None:
        """Inputs that can still be labelled in this phase; None when unlimited."""
        if self.budget is None or phase not in self.budgeted_phases:
            return None
        return max(self.budget - self.budgeted_used, 0)

    def label(self, x: np.ndarray, phase: QueryPhase = "labelling") -> np.ndarray:
        if phase not in QUERY_PHASES:
            raise ValueError(f"unknown phase {phase!r}; known: {', '.join(QUERY_PHASES)}")
        n = len(x)
        if self._before is not None:
            self._before(phase, n)
        remaining = self.remaining(phase)
        if remaining is not None and n > remaining:
            self.usage.refused[phase] += 1
            raise BudgetExhausted(self.budget or 0, self.budgeted_used, n, phase)
        try:
            labels = np.asarray(self._oracle.label(x), dtype=np.int64)
        except PartiallyAnswered as partial:
            self._book(phase, partial.answered)
            cause = partial.__cause__
            if cause is None:
                raise
            if isinstance(cause, BudgetExhausted):
                self.usage.refused_by_oracle[phase] += 1
            raise cause from cause.__cause__
        except BudgetExhausted:
            self.usage.refused_by_oracle[phase] += 1
            raise
        if labels.shape != (n,):
            raise ValueError(f"the oracle returned {labels.shape} labels for {n} inputs")
        self._book(phase, n)
        return labels

    def _book(self, phase: QueryPhase, answered: int) -> None:
        self.usage.by_phase[phase] += answered
        if self._after is not None:
            self._after(phase, answered)
