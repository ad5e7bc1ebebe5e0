"""Sign-OPT against the quick MNIST oracle: adversarials for most images within 1,000 queries each, shrinking
with the queries, every query counted for its image and every example confirmed by the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from bbrange.attacker.engine import InProcessOracle
from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT
from tests.engine.decision_runs import check_honest, run_decision_attack

BUDGET = 1_000


@pytest.mark.parametrize("targeted", [False, True])
def test_sign_opt_finds_shrinking_adversarials_within_the_budget(quick_oracle: InProcessOracle, targeted: bool) -> None:
    attack = SignOPT(target="next" if targeted else None, max_queries_per_image=BUDGET, checkpoints=(200, 500, 1_000))
    run = run_decision_attack(attack, quick_oracle, targeted=targeted)
    check_honest(run, quick_oracle, BUDGET)
    r = run.result
    assert r.success.mean() >= 0.8
    first, last = np.median(r.at_checkpoints[:, 0]), np.median(r.at_checkpoints[:, -1])
    assert last < first


def test_an_image_with_a_small_budget_stops_at_it(quick_oracle: InProcessOracle) -> None:
    run = run_decision_attack(SignOPT(max_queries_per_image=150, checkpoints=(100, 150)), quick_oracle, n=4)
    check_honest(run, quick_oracle, 150)
    assert (run.result.queries == 150).all()


def test_targeting_is_a_setting_and_only_l2_is_supported() -> None:
    assert SignOPT(target="next").target == "next" and SignOPT().target is None
    with pytest.raises(ValueError, match="l2"):
        SignOPT(norm="linf")
