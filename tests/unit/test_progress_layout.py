"""The progress bar's layout: every campaign's phases follow each other without gaps or overlaps, and a search on the
oracle after a substitute (the hybrid) gets most of the bar, where its time goes."""

from __future__ import annotations

import pytest

from bbrange.attacker.campaigns.storage.records import CampaignPhase
from bbrange.attacker.campaigns.worker import lifecycle

TRANSFER = [CampaignPhase.connecting, CampaignPhase.agreement, CampaignPhase.substitute, CampaignPhase.crafting,
            CampaignPhase.evaluation, CampaignPhase.saving]
SEARCH = [CampaignPhase.connecting, CampaignPhase.agreement, CampaignPhase.attack, CampaignPhase.evaluation,
          CampaignPhase.saving]
HYBRID = [CampaignPhase.connecting, CampaignPhase.agreement, CampaignPhase.substitute, CampaignPhase.attack,
          CampaignPhase.evaluation, CampaignPhase.saving]


@pytest.mark.parametrize(("needs_substitute", "searches", "order"),
                         [(True, False, TRANSFER), (False, True, SEARCH), (True, True, HYBRID)],
                         ids=["transfer", "query attack", "hybrid"])
def test_the_phases_a_campaign_goes_through_tile_the_bar(needs_substitute: bool, searches: bool,
                                                         order: list[CampaignPhase]) -> None:
    spans = lifecycle.spans_for(needs_substitute, searches)
    assert spans[order[0]].start == 0.0 and spans[order[-1]].end == 1.0
    for before, after in zip(order, order[1:], strict=False):
        assert spans[before].end == spans[after].start, (before, after)
        assert spans[after].weight > 0


def test_the_hybrid_search_takes_more_of_the_bar_than_its_substitute() -> None:
    spans = lifecycle.spans_for(True, True)
    assert spans[CampaignPhase.attack].weight > 2 * spans[CampaignPhase.substitute].weight
    # the last substitute epoch ends where the search begins, so the bar never moves back between them
    assert lifecycle.substitute_progress([1.0, 2.0], 1, spans) == lifecycle.progress(CampaignPhase.attack, 0.0, spans)
