"""The one black-box pipeline: every query accounted for, results consistent with the oracle's answers,
and a budget that runs out handled the same way on every path."""

from __future__ import annotations

import numpy as np

from bbrange.attacker.engine import (
    FGSM,
    JSMA,
    BlackBoxAttack,
    CallableOracle,
    InProcessOracle,
    JsmaMeasures,
    QueryCounter,
    SubstituteConfig,
    run_blackbox_attack,
)

QUICK = SubstituteConfig(substitute_epochs=1, train_epochs=2, seed=3)


def test_fgsm_pipeline_counts_every_query_and_reports_what_the_oracle_said(quick_oracle: InProcessOracle,
                                                                             mnist_test) -> None:
    counter = QueryCounter(quick_oracle)
    stages: list[str] = []
    x_eval, y_eval = mnist_test.x[100:160], mnist_test.y[100:160]
    result = run_blackbox_attack(counter, mnist_test.x[:20], x_eval, y_eval, BlackBoxAttack(QUICK, FGSM(eps=0.3)),
                                 on_progress=lambda stage, fraction: stages.append(stage))
    assert result.completed and result.report is not None
    assert counter.usage.by_phase == {"labelling": 40, "agreement": 60, "attack": 0, "evaluation": 60, "baseline": 60}
    assert np.array_equal(result.label_before, quick_oracle.label(x_eval))
    assert np.array_equal(result.label_after, quick_oracle.label(result.x_adv))
    assert result.report.transfer_rate == float(np.mean(result.label_after != y_eval))
    assert np.abs(result.x_adv - x_eval).max() <= 0.3 + 1e-6
    assert result.report.mean_linf is not None and result.report.mean_linf <= 0.3 + 1e-6
    assert {"agreement", "crafting", "evaluation"} <= set(stages)
    # The baseline: the same images moved by random ±ε, labelled by the same oracle.
    assert result.x_noise is not None and result.label_noise is not None
    moved = np.abs(result.x_noise - x_eval)
    inside = (x_eval > 0.3) & (x_eval < 0.7)  # where clipping cannot shorten the step
    assert np.allclose(moved[inside], 0.3, atol=1e-6)
    assert np.array_equal(result.label_noise, quick_oracle.label(result.x_noise))
    report = result.report
    assert report.noise_rate == float(np.mean(result.label_noise != y_eval))
    assert report.lift_over_noise == report.transfer_rate - report.noise_rate
    assert report.clean_accuracy == float(np.mean(result.label_before == y_eval))


def test_jsma_pipeline_is_targeted_away_from_the_oracle_label(quick_oracle: InProcessOracle, mnist_test) -> None:
    x_eval, y_eval = mnist_test.x[100:110], mnist_test.y[100:110]
    result = run_blackbox_attack(quick_oracle, mnist_test.x[:20], x_eval, y_eval,
                                 BlackBoxAttack(QUICK, JSMA(target="next", batch_size=5)))
    assert result.targets is not None and result.report is not None
    assert np.array_equal(result.targets, (result.label_before + 1) % 10)
    assert np.array_equal(result.success, result.label_after == result.targets)
    assert result.report.target_rate == result.report.transfer_rate
    # The JSMA baseline changes as many pixels as JSMA did, at random.
    assert result.x_noise is not None
    changed = lambda a: (a.reshape(len(a), -1) != x_eval.reshape(len(a), -1)).sum(1)  # noqa: E731
    assert np.all(changed(result.x_noise) <= changed(result.x_adv))


def test_a_budget_that_runs_out_during_evaluation_keeps_what_was_labelled(mnist_test) -> None:
    oracle = CallableOracle(lambda x: (x.reshape(len(x), -1).mean(1) * 100).astype(int) % 10, (1, 28, 28), 10)
    x_eval, y_eval = mnist_test.x[100:1600], mnist_test.y[100:1600]
    # 40 labelling + 1,500 agreement + 1,000 evaluation: the second evaluation batch does not fit.
    counter = QueryCounter(oracle, budget=2_540)
    result = run_blackbox_attack(counter, mnist_test.x[:20], x_eval, y_eval, BlackBoxAttack(QUICK, FGSM()))
    assert not result.completed and result.report is not None
    assert len(result.label_after) == result.report.samples == 1_000 and len(result.x_adv) == 1_500
    assert "1000 of 1500 adversarial examples were labelled" in (result.stop_reason or "")
    assert counter.total == 2_540


def test_a_labelling_budget_attacks_with_the_substitute_it_has_unless_told_to_stop(quick_oracle: InProcessOracle,
                                                                                    mnist_test) -> None:
    x_eval, y_eval = mnist_test.x[100:130], mnist_test.y[100:130]
    capped = SubstituteConfig(substitute_epochs=2, train_epochs=1, query_budget=50)
    goes_on = run_blackbox_attack(quick_oracle, mnist_test.x[:20], x_eval, y_eval, BlackBoxAttack(capped, FGSM()))
    assert not goes_on.substitute.completed and goes_on.report is not None and goes_on.report.samples == 30
    assert goes_on.stop_reason and goes_on.stop_reason.startswith("substitute training stopped")
    stops = run_blackbox_attack(quick_oracle, mnist_test.x[:20], x_eval, y_eval,
                                BlackBoxAttack(capped, FGSM(), stop_when_training_stops=True))
    assert stops.report is None and len(stops.x_adv) == 0 and not stops.completed


def test_jsma_results_carry_the_thesis_measures_on_the_substitute(quick_oracle: InProcessOracle, mnist_test) -> None:
    x_eval, y_eval = mnist_test.x[100:106], mnist_test.y[100:106]
    result = run_blackbox_attack(quick_oracle, mnist_test.x[:20], x_eval, y_eval,
                                 BlackBoxAttack(QUICK, JSMA(target="next", batch_size=6), noise_baseline=False))
    assert isinstance(result.measures, JsmaMeasures) and result.targets is not None
    a = result.measures.adversarial_distance
    assert a.shape == (6,) and ((a >= 0) & (a <= 1)).all()
    h = result.measures.hardness
    assert h.shape == (10, 10)
    pairs = set(zip(result.label_before.tolist(), result.targets.tolist(), strict=True))
    assert all(np.isnan(h[s, t]) == ((s, t) not in pairs) for s in range(10) for t in range(10))
    # What a campaign's results keep of them, as before attacks were plug-ins: the mean A(X, t), H(s, t) rounded.
    kept = result.measures.as_results()
    assert set(kept) == {"mean_adversarial_distance", "hardness"} and kept["mean_adversarial_distance"] == float(a.mean())
    assert all((v is None) == np.isnan(h[s, t]) and (v is None or v == round(float(h[s, t]), 6))
               for s, row in enumerate(kept["hardness"]) for t, v in enumerate(row))
