"""A campaign's life in the service's words, in one place: its phases in order, the share of the progress bar each
takes, and the engine's own vocabulary (pipeline stages, query phases, budget refusals) mapped onto them. The
runner speaks only these terms; the engine keeps its `Stage` and `QueryPhase`, which are read nowhere else."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bbrange.attacker.campaigns.errors import BudgetSpent
from bbrange.attacker.campaigns.storage.records import CampaignPhase
from bbrange.attacker.engine import BudgetExhausted, QueryPhase, Stage


@dataclass(frozen=True)
class Span:
    """A phase's share of the progress bar: from `start` to `end`; its weight is the difference."""

    start: float
    end: float

    @property
    def weight(self) -> float:
        return self.end - self.start

    def at(self, fraction: float) -> float:
        return round(self.start + self.weight * min(max(fraction, 0.0), 1.0), 4)


# The phases in the order a campaign goes through them. The weights are rough shares of a typical campaign's wall
# time; the substitute's share is split between its epochs by the size of each epoch's set (plan.epoch_weights).
SPANS: dict[CampaignPhase, Span] = {
    CampaignPhase.queued: Span(0.0, 0.0),
    CampaignPhase.connecting: Span(0.0, 0.02),
    CampaignPhase.agreement: Span(0.02, 0.07),
    CampaignPhase.substitute: Span(0.07, 0.82),
    CampaignPhase.crafting: Span(0.82, 0.87),
    CampaignPhase.attack: Span(0.07, 0.87),  # a query attack's search, in place of the substitute and crafting
    CampaignPhase.evaluation: Span(0.87, 0.97),
    CampaignPhase.saving: Span(0.97, 1.0),
    CampaignPhase.done: Span(1.0, 1.0),
}
# A search on the oracle after a substitute (the hybrid): the search, not the substitute, takes most of the time.
SPANS_SEARCH_AFTER_SUBSTITUTE: dict[CampaignPhase, Span] = {
    **SPANS,
    CampaignPhase.substitute: Span(0.07, 0.3),
    CampaignPhase.crafting: Span(0.3, 0.3),
    CampaignPhase.attack: Span(0.3, 0.87),
}


def spans_for(needs_substitute: bool, searches_oracle: bool) -> dict[CampaignPhase, Span]:
    return SPANS_SEARCH_AFTER_SUBSTITUTE if needs_substitute and searches_oracle else SPANS

# Where the engine's stages and query phases fall: the noise baseline's queries belong to the evaluation.
_STAGE_PHASES: dict[Stage, CampaignPhase] = {
    "agreement": CampaignPhase.agreement,
    "substitute": CampaignPhase.substitute,
    "crafting": CampaignPhase.crafting,
    "attack": CampaignPhase.attack,
    "evaluation": CampaignPhase.evaluation,
}
_QUERY_PHASES: dict[QueryPhase, CampaignPhase] = {
    "agreement": CampaignPhase.agreement,
    "labelling": CampaignPhase.substitute,
    "attack": CampaignPhase.attack,
    "evaluation": CampaignPhase.evaluation,
    "baseline": CampaignPhase.evaluation,
}


def phase_of_stage(stage: Stage) -> CampaignPhase:
    return _STAGE_PHASES[stage]


def phase_of_query(phase: QueryPhase) -> CampaignPhase:
    return _QUERY_PHASES[phase]


def progress(phase: CampaignPhase, fraction: float = 0.0, spans: dict[CampaignPhase, Span] = SPANS) -> float:
    """Where the bar stands `fraction` of the way through `phase`."""
    return spans[phase].at(fraction)


def substitute_progress(epoch_weights: Sequence[float], rho: int, spans: dict[CampaignPhase, Span] = SPANS) -> float:
    """Where the bar stands once substitute epoch `rho` (0-based) is done."""
    return progress(CampaignPhase.substitute, sum(epoch_weights[: rho + 1]) / max(sum(epoch_weights), 1e-9), spans)


@contextlib.contextmanager
def engine_failures() -> Iterator[None]:
    """The engine's refusals in the service's terms. A `BudgetExhausted` only leaves the engine when the agreement
    labels (or the target's description) were refused: without them nothing can be measured."""
    try:
        yield
    except BudgetExhausted as e:
        raise BudgetSpent(f"{e} (during the agreement phase)") from e
