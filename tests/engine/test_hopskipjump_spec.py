"""HopSkipJump in a campaign spec: registered, validated with the refusals a person can act on, and built into
the engine attack with the spec's settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bbrange.attacker.campaigns.spec.attacks.hopskipjump import HopSkipJumpCrafting
from bbrange.attacker.campaigns.spec.attacks.registry import registered
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec

TARGET = {"oracle_url": "http://127.0.0.1:8000", "model": "mnist", "api_key": "k"}


def spec(**crafting: Any) -> CampaignSpec:
    return CampaignSpec.model_validate({"target": TARGET, "dataset": "mnist",
                                        "crafting": {"method": "hopskipjump", **crafting}})


def test_a_valid_spec_builds_the_engine_attack() -> None:
    crafting = spec(norm="linf", targeted=True, target="next", max_queries_per_image=2_000,
                    checkpoints=[100, 1_000, 2_000], init_evals=50, gamma=2.0, stepsize_search="grid_search").crafting
    assert isinstance(crafting, HopSkipJumpCrafting)
    assert crafting.label() == "HopSkipJump LINF, targeted (next), ≤2,000 queries/image"
    attack = registered("hopskipjump").engine_attack(crafting)
    assert (attack.name, attack.target, attack.norm) == ("hopskipjump", "next", "linf")  # type: ignore[attr-defined]
    assert (attack.init_num_evals, attack.max_num_evals, attack.gamma) == (50, 10_000, 2.0)  # type: ignore[attr-defined]
    assert attack.checkpoints == (100, 1_000, 2_000)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("crafting", "message"), [
    ({"norm": "l1"}, "supports the norm"),
    ({"checkpoints": [500, 100]}, "strictly increasing"),
    ({"targeted": True}, "needs `target`"),
    ({"init_evals": 200, "max_evals": 100}, "init_evals must not exceed"),
    ({"stepsize_search": "line"}, "stepsize_search"),
    ({"gamma": 0}, "gamma"),
])
def test_refusals(crafting: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**crafting)
