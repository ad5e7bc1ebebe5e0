"""The decision-based attacks' `evasion` option in a campaign spec: bad values refused with 422s that say what is
wrong, a good one accepted with its default strength, and built into the engine attack."""

from __future__ import annotations

from typing import Any

import pytest

from bbrange.attacker.campaigns.spec.attacks.registry import load_attacks
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from tests.specs import campaign_spec
from tests.unit.attacker_inprocess import InProcessApi

INVALID: list[tuple[dict[str, Any], str]] = [
    ({"transform": "blur"}, "crafting.hopskipjump.evasion.transform"),
    ({"strength": 0.02}, "crafting.hopskipjump.evasion.transform: Field required"),
    ({"transform": "noise", "strength": 0}, "crafting.hopskipjump.evasion.strength"),
    ({"transform": "noise", "strength": -0.1}, "crafting.hopskipjump.evasion.strength"),
    ({"transform": "noise", "strength": 0.5}, "evasion strength for noise must be at most 0.1"),
    ({"transform": "brightness", "strength": 0.3}, "evasion strength for brightness must be at most 0.2"),
    ({"transform": "noise", "strength": "0.02"}, "crafting.hopskipjump.evasion.strength"),
    ({"transform": "noise", "reject": True}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("evasion", "message"), INVALID, ids=[m[:40] for _, m in INVALID])
def test_a_bad_evasion_is_refused_with_a_clear_message(api: InProcessApi, evasion: dict, message: str) -> None:
    r = api.submit(campaign_spec(crafting={"method": "hopskipjump", "evasion": evasion}))
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"], r.json()["error"]["message"]
    assert api.total() == 0


def test_a_good_evasion_is_accepted_and_built(api: InProcessApi) -> None:
    from bbrange.attacker.engine.query_attacks.evasion import Evasion

    assert api.submit(campaign_spec(crafting={"method": "rays", "evasion": {"transform": "noise"}})).status_code == 202
    attacks = load_attacks()
    for method in ("hopskipjump", "sign_opt", "rays", "hybrid"):
        spec = CampaignSpec.model_validate(campaign_spec(crafting={"method": method,
                                                                   "evasion": {"transform": "brightness"}}))
        built = attacks[method].engine_attack(spec.crafting)
        inner = getattr(built, "inner", built)
        assert inner.evasion == Evasion("brightness", 0.05), method
        assert "evasion brightness 0.05" in spec.crafting.label() or method == "hybrid"
    plain = CampaignSpec.model_validate(campaign_spec(crafting={"method": "hopskipjump"}))
    assert attacks["hopskipjump"].engine_attack(plain.crafting).evasion is None  # default: off
