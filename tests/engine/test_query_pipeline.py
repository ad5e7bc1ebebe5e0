"""A query attack through the one pipeline: no substitute, no labelling; its questions counted under "attack",
exactly; a campaign budget spent mid-search keeps each image's best adversarial so far."""

from __future__ import annotations

import numpy as np
import pytest

from bbrange.attacker.engine import BlackBoxAttack, InProcessOracle, QueryCounter, run_blackbox_attack
from bbrange.attacker.engine.query_attacks.budget import DecisionResult
from bbrange.attacker.engine.query_attacks.measures import QueryMeasures
from tests.attacker.toy_query_attack_engine import NoiseThenBisect

N = 40


def test_a_query_attack_spends_only_agreement_attack_and_baseline_queries(quick_oracle: InProcessOracle,
                                                                          mnist_test) -> None:
    counter = QueryCounter(quick_oracle)
    stages: list[str] = []
    x, y = mnist_test.x[:N], mnist_test.y[:N]
    attack = NoiseThenBisect(max_queries_per_image=10, checkpoints=(2, 5, 10, 100), batch_size=16)
    result = run_blackbox_attack(counter, x[:0], x, y, BlackBoxAttack(crafting=attack),
                                 on_progress=lambda stage, fraction: stages.append(stage))
    assert result.completed and result.substitute is None and result.report is not None
    assert result.queries_per_image is not None and result.queries_per_image.max() <= 10
    # noise of each found size (N) and the three fixed sizes of each norm (2 × 3 N), all under "baseline"
    assert counter.usage.by_phase == {"labelling": 0, "agreement": N, "attack": int(result.queries_per_image.sum()),
                                      "evaluation": 0, "baseline": 7 * N}
    assert "attack" in stages and "substitute" not in stages and "crafting" not in stages
    # every example it reports is one the oracle labels adversarial; the others are the clean image
    labels = quick_oracle.label(result.x_adv)
    assert np.array_equal(result.success, labels != result.label_before)
    assert result.success.any() and np.all(result.x_adv[~result.success] == x[~result.success])
    assert result.report.transfer_rate == float(result.success.mean())
    measures = result.measures
    assert isinstance(measures, QueryMeasures)
    out = measures.as_results()
    assert out["distortion_by_queries"]["queries"] == [2, 5, 10]  # past the per-image budget: left out
    median = out["distortion_by_queries"]["median"]
    assert all(a <= b for a, b in zip(median[1:], median[:-1], strict=True))  # the best only improves
    points = out["success_by_size"]["points"]
    assert [p["size"] for p in points] == [1.5, 2.0, 3.0] and all(p["noise_rate"] is not None for p in points)
    assert out["queries_per_image"]["total"] == counter.used("attack")
    # the same examples in L∞: never more distorted in L∞ than in L2, each size beside L∞ noise
    other = out["distortion_by_queries_other"]
    assert other["norm"] == "linf" and other["queries"] == [2, 5, 10]
    assert all(o <= m + 1e-6 for o, m in zip(other["median"], median, strict=True))
    points_other = out["success_by_size_other"]["points"]
    assert out["success_by_size_other"]["norm"] == "linf" and [p["size"] for p in points_other] == [0.1, 0.2, 0.3]
    assert all(p["noise_rate"] is not None for p in points_other)


def test_a_budget_spent_mid_search_keeps_the_best_adversarial_so_far(quick_oracle: InProcessOracle,
                                                                      mnist_test) -> None:
    counter = QueryCounter(quick_oracle, budget=N + 90)
    x, y = mnist_test.x[:N], mnist_test.y[:N]
    attack = NoiseThenBisect(max_queries_per_image=20, batch_size=10)
    result = run_blackbox_attack(counter, x[:0], x, y, BlackBoxAttack(crafting=attack))
    assert not result.completed and result.stop_reason is not None and "best adversarial so far" in result.stop_reason
    assert counter.used("attack") <= 90 and counter.used("baseline") == 0 and counter.used("evaluation") == 0
    assert result.queries_per_image is not None and int(result.queries_per_image.sum()) == counter.used("attack")
    assert result.queries_per_image[-10:].sum() == 0  # the last chunk never started
    labels = quick_oracle.label(result.x_adv)
    assert np.array_equal(result.success, labels != result.label_before) and result.success.any()


def test_a_targeted_query_attack_starts_from_images_of_its_target(quick_oracle: InProcessOracle, mnist_test) -> None:
    counter = QueryCounter(quick_oracle)
    x, y = mnist_test.x[:N], mnist_test.y[:N]
    attack = NoiseThenBisect(max_queries_per_image=10, target="next", batch_size=N)
    result = run_blackbox_attack(counter, x[:0], x, y, BlackBoxAttack(crafting=attack, noise_baseline=False))
    assert result.targets is not None and np.array_equal(result.targets, (result.label_before + 1) % 10)
    labels = quick_oracle.label(result.x_adv)
    assert np.array_equal(result.success, labels == result.targets)
    assert np.array_equal(result.label_after[result.success], result.targets[result.success])
    assert counter.usage.by_phase["baseline"] == 0 and result.success.mean() > 0.5
    measures = result.measures
    assert isinstance(measures, QueryMeasures) and all(r is None for r in measures.noise_rates)


def test_least_likely_targets_need_a_substitute() -> None:
    with pytest.raises(ValueError, match="least likely"):
        NoiseThenBisect(target="least_likely")


def test_the_decision_result_reaches_the_measures(quick_oracle: InProcessOracle, mnist_test) -> None:
    seen: list[object] = []

    class Spy(NoiseThenBisect):
        def measures(self, context, x_adv, targets, crafted):  # type: ignore[no-untyped-def]
            seen.append(context.details)
            return super().measures(context, x_adv, targets, crafted)

    x, y = mnist_test.x[:8], mnist_test.y[:8]
    run_blackbox_attack(QueryCounter(quick_oracle), x[:0], x, y, BlackBoxAttack(crafting=Spy(max_queries_per_image=5)))
    assert len(seen) == 1 and isinstance(seen[0], DecisionResult) and seen[0].queries.sum() > 0
