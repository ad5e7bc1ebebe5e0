"""FGSM at several ε from one substitute: the spec, the engine, and what a campaign's results keep."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.worker.plan import engine_attack
from bbrange.attacker.campaigns.worker.results import campaign_results
from bbrange.attacker.engine import FGSM, BlackBoxAttack, CallableOracle, QueryCounter, SubstituteConfig, run_blackbox_attack

QUICK = SubstituteConfig(substitute_epochs=1, train_epochs=1, seed=3)
TARGET = {"oracle_url": "http://127.0.0.1:8000", "model": "mnist", "api_key": "k"}


def spec(eps: object) -> CampaignSpec:
    return CampaignSpec.model_validate({"target": TARGET, "dataset": "mnist", "crafting": {"method": "fgsm", "eps": eps}})


def brightness_oracle() -> CallableOracle:
    return CallableOracle(lambda x: (x.reshape(len(x), -1).mean(1) * 100).astype(int) % 10, (1, 28, 28), 10)


def test_the_spec_takes_one_eps_or_a_list_headline_first() -> None:
    assert spec(0.3).crafting.sizes() == [0.3] and spec(0.3).public()["crafting"]["eps"] == 0.3  # unchanged shape
    assert spec([0.3, 0.1, 0.2]).crafting.sizes() == [0.3, 0.1, 0.2]
    attack = engine_attack(spec([0.3, 0.1, 0.2]))
    assert attack.crafting == FGSM(eps=0.3, more_sizes=(0.1, 0.2))
    assert [(e, a) for e, a in attack.crafting.size_sweep()] == [(0.3, attack.crafting), (0.1, FGSM(eps=0.1)),
                                                                (0.2, FGSM(eps=0.2))]
    assert engine_attack(spec(0.3)).crafting == FGSM(eps=0.3) and FGSM(eps=0.3).size_sweep() == ()
    for bad in ([], [0.1, 0.1], [0.1, 1.5], [0.0], [0.1] * 9, "0.3"):
        with pytest.raises(ValidationError):
            spec(bad)


def test_further_sizes_cost_evaluation_queries_only_and_leave_the_headline_as_it_was(mnist_test) -> None:
    x0, x_eval, y_eval = mnist_test.x[:20], mnist_test.x[100:150], mnist_test.y[100:150]
    alone = QueryCounter(brightness_oracle())
    headline = run_blackbox_attack(alone, x0, x_eval, y_eval, BlackBoxAttack(QUICK, FGSM(eps=0.3)))
    swept = QueryCounter(brightness_oracle())
    result = run_blackbox_attack(swept, x0, x_eval, y_eval,
                                 BlackBoxAttack(QUICK, FGSM(eps=0.3, more_sizes=(0.1, 0.5))))
    assert headline.sizes == [] and result.completed
    assert result.report == headline.report and np.array_equal(result.x_adv, headline.x_adv)
    assert [s.eps for s in result.sizes] == [0.3, 0.1, 0.5] and result.sizes[0].report == headline.report
    assert alone.usage.by_phase["labelling"] == swept.usage.by_phase["labelling"] == 40
    assert swept.usage.by_phase["evaluation"] == swept.usage.by_phase["baseline"] == 3 * 50
    for s in result.sizes:
        assert s.report.samples == s.report.noise_samples == 50
        assert s.report.mean_linf is not None and s.report.mean_linf <= s.eps + 1e-6
        assert s.report.lift_over_noise == pytest.approx(s.report.transfer_rate - s.report.noise_rate)
    results = campaign_results(result)
    assert results.by_eps is not None and [s.eps for s in results.by_eps] == [0.3, 0.1, 0.5]
    assert results.transfer_rate == results.by_eps[0].transfer_rate == headline.report.transfer_rate
    assert campaign_results(headline).by_eps is None


def test_a_budget_that_runs_out_among_the_sizes_keeps_those_measured(mnist_test) -> None:
    x0, x_eval, y_eval = mnist_test.x[:20], mnist_test.x[100:150], mnist_test.y[100:150]
    # 40 labelling + 50 agreement + 2 × 50 at ε = 0.3 + 50 adversarial examples at ε = 0.1; its noise does not fit.
    counter = QueryCounter(brightness_oracle(), budget=240)
    result = run_blackbox_attack(counter, x0, x_eval, y_eval,
                                 BlackBoxAttack(QUICK, FGSM(eps=0.3, more_sizes=(0.1, 0.2))))
    assert not result.completed and "at ε=0.1" in (result.stop_reason or "")
    assert [s.eps for s in result.sizes] == [0.3, 0.1]
    assert result.sizes[1].report.samples == 50 and result.sizes[1].report.noise_rate is None
    assert counter.total == 240
