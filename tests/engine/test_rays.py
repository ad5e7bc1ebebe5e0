"""RayS against the quick MNIST oracle: adversarials for every image within 1,000 queries each, shrinking
with the queries, every query counted for its image and every example confirmed by the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from bbrange.attacker.engine import InProcessOracle
from bbrange.attacker.engine.query_attacks.rays import RayS
from tests.engine.decision_runs import check_honest, run_decision_attack

BUDGET = 1_000


def test_rays_finds_shrinking_adversarials_within_the_budget(quick_oracle: InProcessOracle) -> None:
    run = run_decision_attack(RayS(max_queries_per_image=BUDGET, checkpoints=(100, 500, 1_000)), quick_oracle)
    check_honest(run, quick_oracle, BUDGET)
    r = run.result
    assert r.success.mean() >= 0.9 and (r.queries == BUDGET).all()
    assert np.median(r.at_checkpoints[:, -1]) < np.median(r.at_checkpoints[:, 0])


def test_an_image_stops_early_once_within_epsilon(quick_oracle: InProcessOracle) -> None:
    run = run_decision_attack(RayS(max_queries_per_image=BUDGET, epsilon=0.3), quick_oracle, n=5)
    check_honest(run, quick_oracle, BUDGET)
    assert (run.result.distortion <= 0.3).all() and (run.result.queries < BUDGET).all()


def test_rays_is_untargeted_and_linf_only() -> None:
    assert RayS.targeted is False
    with pytest.raises(ValueError, match="linf"):
        RayS(norm="l2")
