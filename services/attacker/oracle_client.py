"""The attacker's only window on the oracle: labels for inputs, every input counted.

The attack never sees the oracle's weights, logits or probabilities. `LabelOracle` is the whole
contract (an HTTP client implements it in the service; `InProcessOracle` implements it for tests and
benchmarks), and `QueryCounter` sits in front of any implementation to count queries per phase and to
enforce an exact budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from bbrange.shared.devices import as_batch

Phase = Literal["labelling", "agreement", "evaluation"]
PHASES: tuple[Phase, ...] = ("labelling", "agreement", "evaluation")


@runtime_checkable
class LabelOracle(Protocol):
    """Labels only. `label` takes float32 NCHW in [0, 1] and returns one int64 label per input."""

    @property
    def input_shape(self) -> tuple[int, int, int]: ...

    @property
    def num_classes(self) -> int: ...

    def label(self, x: np.ndarray) -> np.ndarray: ...


class BudgetExhausted(RuntimeError):
    """A request would have gone past the query budget; nothing of it was sent."""

    def __init__(self, budget: int, used: int, requested: int, phase: Phase) -> None:
        super().__init__(
            f"query budget exhausted: {used} of {budget} used, {requested} more asked for ({phase})"
        )
        self.budget = budget
        self.used = used
        self.requested = requested
        self.phase = phase


def _check_batch(x: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"expected a batch of shape (N, {', '.join(map(str, input_shape))}), got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


class InProcessOracle:
    """A torch classifier behind the label-only interface: argmax is all that leaves this object."""

    def __init__(
        self,
        model: nn.Module,
        input_shape: tuple[int, int, int],
        num_classes: int,
        device: torch.device = torch.device("cpu"),
        batch_size: int = 1000,
    ) -> None:
        # Name-mangled so that attack code cannot reach the model through the oracle by accident.
        self.__model = model.to(device).eval()
        self.__device = device
        self._input_shape = tuple(input_shape)
        self._num_classes = num_classes
        self._batch_size = batch_size

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._input_shape  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @torch.no_grad()
    def label(self, x: np.ndarray) -> np.ndarray:
        x = _check_batch(x, self.input_shape)
        if len(x) == 0:
            return np.zeros(0, dtype=np.int64)
        labels = []
        for i in range(0, len(x), self._batch_size):
            xb = as_batch(np.clip(x[i : i + self._batch_size], 0.0, 1.0), self.__device)
            labels.append(self.__model(xb).argmax(1).cpu())
        return torch.cat(labels).numpy().astype(np.int64)


@dataclass
class QueryUsage:
    by_phase: dict[str, int] = field(default_factory=lambda: {p: 0 for p in PHASES})

    @property
    def total(self) -> int:
        return sum(self.by_phase.values())


class QueryCounter:
    """Counts every input sent to the oracle, per phase, and refuses to go past `budget`.

    The budget covers the phases in `budgeted_phases` (all of them by default, since a deployed
    oracle charges every query). A request that does not fit is refused whole, before anything is
    sent, so the budget is never overrun and never partly spent by a refused request.
    """

    def __init__(
        self,
        oracle: LabelOracle,
        budget: int | None = None,
        budgeted_phases: Iterable[Phase] = PHASES,
    ) -> None:
        if budget is not None and budget < 0:
            raise ValueError("budget must be >= 0")
        self._oracle = oracle
        self.budget = budget
        self.budgeted_phases = frozenset(budgeted_phases)
        self.usage = QueryUsage()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._oracle.input_shape

    @property
    def num_classes(self) -> int:
        return self._oracle.num_classes

    @property
    def total(self) -> int:
        return self.usage.total

    def used(self, phase: Phase) -> int:
        return self.usage.by_phase[phase]

    @property
    def budgeted_used(self) -> int:
        return sum(n for p, n in self.usage.by_phase.items() if p in self.budgeted_phases)

    def remaining(self, phase: Phase = "labelling") -> int | None:
        """Inputs that can still be labelled in this phase; None when unlimited."""
        if self.budget is None or phase not in self.budgeted_phases:
            return None
        return max(self.budget - self.budgeted_used, 0)

    def label(self, x: np.ndarray, phase: Phase = "labelling") -> np.ndarray:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
        n = len(x)
        remaining = self.remaining(phase)
        if remaining is not None and n > remaining:
            raise BudgetExhausted(self.budget or 0, self.budgeted_used, n, phase)
        labels = np.asarray(self._oracle.label(x), dtype=np.int64)
        if labels.shape != (n,):
            raise ValueError(f"the oracle returned {labels.shape} labels for {n} inputs")
        self.usage.by_phase[phase] += n
        return labels

    def for_phase(self, phase: Phase) -> PhaseOracle:
        """This counter seen as a plain `LabelOracle` whose queries are booked to `phase`."""
        return PhaseOracle(self, phase)


class PhaseOracle:
    def __init__(self, counter: QueryCounter, phase: Phase) -> None:
        self._counter = counter
        self.phase = phase

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._counter.input_shape

    @property
    def num_classes(self) -> int:
        return self._counter.num_classes

    def label(self, x: np.ndarray) -> np.ndarray:
        return self._counter.label(x, self.phase)
