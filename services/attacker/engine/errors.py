"""The engine's exceptions, one hierarchy: catch `EngineError` for anything the engine itself refuses.

    EngineError
    ├── BudgetExhausted      a call would have gone past the query budget; nothing of it was sent
    └── PartiallyAnswered    an oracle failed half way through a call; says how many inputs it answered

Errors of an oracle implementation (an HTTP failure, a cancellation) are its own; when such an error
interrupts a call that was partly answered, the oracle raises `PartiallyAnswered` from it, so that the
`QueryCounter` books the inputs the oracle did answer (a deployed oracle charged them) and then
re-raises the original error unchanged.
"""

from __future__ import annotations

from bbrange.attacker.engine.vocabulary import QUERY_PHASES as QUERY_PHASES  # re-exported: defined torch-free
from bbrange.attacker.engine.vocabulary import QueryPhase as QueryPhase


class EngineError(Exception):
    """Base class of the engine's own exceptions."""


class BudgetExhausted(EngineError):
    """A request would have gone past the query budget; nothing of it was sent."""

    budget: int | None
    used: int | None
    phase: QueryPhase | None

    def __init__(self, budget: int, used: int, requested: int, phase: QueryPhase) -> None:
        super().__init__(
            f"query budget exhausted: {used} of {budget} used, {requested} more asked for ({phase})"
        )
        self.budget = budget
        self.used = used
        self.requested = requested
        self.phase = phase


class PartiallyAnswered(EngineError):
    """Raised by an oracle from the error that cut a call short, after `answered` of its inputs were answered."""

    def __init__(self, answered: int) -> None:
        super().__init__(f"the oracle answered {answered} inputs of the call before it failed")
        self.answered = answered
