"""The adaptive attacker's evasion (query_attacks/evasion.py): every query randomly transformed, still counted
once per image and per phase; the examples kept are the inputs the oracle answered, adversarial as they are; the
transformation changes Blacklight's fingerprint where the attack's own near-copies keep it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bbrange.attacker.engine import BlackBoxAttack, InProcessOracle, QueryCounter, run_blackbox_attack
from bbrange.attacker.engine.query_attacks.evasion import Evasion
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
from bbrange.attacker.engine.query_attacks.rays import RayS
from bbrange.oracle.detection import blacklight
from bbrange.oracle.detection.config import BlacklightConfig
from tests.engine.decision_runs import check_honest, run_decision_attack


def test_each_row_gets_its_own_draw_within_the_valid_range() -> None:
    x = np.full((4, 1, 28, 28), 0.5, np.float32)
    for transform in ("brightness", "noise"):
        out = Evasion(transform, 0.05).apply(x, np.random.default_rng(0))
        assert out.shape == x.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
        assert len({float(v) for v in out.reshape(4, -1)[:, 0]}) == 4
    with pytest.raises(ValueError, match="unknown evasion transform"):
        Evasion("blur", 0.1)  # type: ignore[arg-type]


def test_noise_changes_the_fingerprint_where_a_near_copy_keeps_it(mnist_test) -> None:
    config = BlacklightConfig()
    x = np.asarray(mnist_test.x[:20], np.float32)
    rng = np.random.default_rng(1)
    near = np.clip(x + rng.normal(0, 0.002, x.shape), 0, 1).astype(np.float32)  # an attack's probe around x
    moved = Evasion("noise", 0.02).apply(near, rng)
    fx, fnear, fmoved = (blacklight.fingerprints(v, config) for v in (x, near, moved))
    assert np.mean([blacklight.shared(a, b) >= config.threshold for a, b in zip(fx, fnear, strict=True)]) >= 0.9
    assert np.mean([blacklight.shared(a, b) >= config.threshold for a, b in zip(fx, fmoved, strict=True)]) <= 0.1


@pytest.mark.parametrize("attack", [HopSkipJump(norm="l2", max_queries_per_image=300, checkpoints=(100, 300)),
                                    RayS(max_queries_per_image=300, checkpoints=(100, 300))],
                         ids=["hopskipjump", "rays"])
def test_with_evasion_every_query_is_counted_and_every_example_confirmed_as_kept(
        attack, quick_oracle: InProcessOracle) -> None:
    evasion = Evasion("noise", 0.02)
    run = run_decision_attack(replace(attack, evasion=evasion), quick_oracle, n=6, evasion=evasion)
    check_honest(run, quick_oracle, 300)  # counted = sent, none past budget, the kept x_adv relabelled untransformed
    assert run.result.success.all() and (run.result.queries == 300).all()


def test_through_the_pipeline_the_attack_phase_counts_exactly(quick_oracle: InProcessOracle, mnist_test) -> None:
    counter = QueryCounter(quick_oracle)
    x, y = mnist_test.x[:8], mnist_test.y[:8]
    attack = HopSkipJump(norm="l2", max_queries_per_image=150, checkpoints=(50, 150), evasion=Evasion("brightness",
                                                                                                      0.05))
    result = run_blackbox_attack(counter, x[:0], x, y, BlackBoxAttack(crafting=attack))
    assert result.queries_per_image is not None
    assert counter.usage.by_phase["attack"] == int(result.queries_per_image.sum()) <= 8 * 150
    assert counter.usage.by_phase["labelling"] == 0 and counter.usage.by_phase["agreement"] == 8
    labels = quick_oracle.label(result.x_adv)  # as kept, no transformation
    assert np.array_equal(result.success, labels != result.label_before) and result.success.any()
