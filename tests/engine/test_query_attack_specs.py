"""Sign-OPT and RayS in a campaign spec: registered built-ins, their settings build the engine attacks, and a
norm or targeting they do not support is refused with a message a person can act on."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bbrange.attacker.campaigns.spec.attacks.registry import load_attacks
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from tests.specs import campaign_spec


def with_crafting(**crafting: Any) -> dict[str, Any]:
    return campaign_spec(crafting=crafting)


def test_both_are_built_in_and_build_their_engine_attack() -> None:
    from bbrange.attacker.engine.query_attacks.rays import RayS
    from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT

    attacks = load_attacks()
    spec = CampaignSpec.model_validate(with_crafting(method="sign_opt", targeted=True, target="next", k=50,
                                                     max_queries_per_image=500))
    built = attacks["sign_opt"].engine_attack(spec.crafting)
    assert isinstance(built, SignOPT) and built.target == "next" and built.k == 50 and built.max_queries_per_image == 500
    spec = CampaignSpec.model_validate(with_crafting(method="rays", epsilon=0.1))
    built = attacks["rays"].engine_attack(spec.crafting)
    assert isinstance(built, RayS) and built.norm == "linf" and built.epsilon == 0.1


@pytest.mark.parametrize(("crafting", "message"), [
    ({"method": "sign_opt", "norm": "linf"}, "sign_opt supports the norm"),
    ({"method": "rays", "norm": "l2"}, "rays supports the norm"),
    ({"method": "rays", "targeted": True, "target": "next"}, "rays is untargeted only"),
    ({"method": "sign_opt", "k": 0}, "k"),
])
def test_what_an_attack_does_not_support_is_refused(crafting: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CampaignSpec.model_validate(with_crafting(**crafting))
