from __future__ import annotations

import numpy as np
import pytest
import torch

from bbrange.attacker.engine import InProcessOracle, QueryCounter, SubstituteConfig, jacobian_augment, train_substitute
from bbrange.shared.architectures import build_model


def test_augmentation_doubles_the_set_and_stays_in_range(mnist_test) -> None:
    torch.manual_seed(0)
    model = build_model("papernot-mnist", (1, 28, 28), 10)
    x = torch.from_numpy(mnist_test.x[:40])
    labels = torch.from_numpy(mnist_test.y[:40])
    new = jacobian_augment(model, x, labels, 0.1, batch_size=16)
    s1 = torch.cat([x, new])
    assert s1.shape == (80, 1, 28, 28)
    assert s1.min() >= 0 and s1.max() <= 1
    # Off the box edges the step is exactly λ·sgn of the Jacobian row of the given label.
    mid = 0.25 + 0.5 * x
    moved = jacobian_augment(model, mid, labels, 0.1) - mid
    xg = mid.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xg).gather(1, labels[:, None]).sum(), xg)
    assert torch.allclose(moved, 0.1 * grad.sign(), atol=1e-6)


def test_one_substitute_epoch_doubles_the_set(quick_oracle: InProcessOracle, mnist_test) -> None:
    counter = QueryCounter(quick_oracle)
    config = SubstituteConfig(substitute_epochs=2, train_epochs=1)
    result = train_substitute(counter, mnist_test.x[:20], config)
    assert [r.set_size for r in result.reports] == [20, 40, 80]
    assert counter.used("labelling") == 80 and result.completed
    assert result.x_train.min() >= 0 and result.x_train.max() <= 1
    # S0 is labelled by the oracle, not by ground truth.
    assert np.array_equal(result.y_train[:20], quick_oracle.label(mnist_test.x[:20]))


def test_reservoir_sampling_and_periodic_step(quick_oracle: InProcessOracle, mnist_test) -> None:
    counter = QueryCounter(quick_oracle)
    config = SubstituteConfig(substitute_epochs=4, train_epochs=1, reservoir=True, sigma=2, kappa=15,
                              periodic_step=True, tau=2)
    result = train_substitute(counter, mnist_test.x[:10], config)
    assert [r.set_size for r in result.reports] == [10, 20, 40, 55, 70]
    assert counter.used("labelling") == 70
    # λ_ρ = λ·(−1)^⌊ρ/τ⌋ with the default λ = −0.1: towards the boundary first, as the authors' reference code.
    assert [r.step_size for r in result.reports] == pytest.approx([-0.1, -0.1, 0.1, 0.1, 0.0])


def test_budget_stops_cleanly_and_exactly(quick_oracle: InProcessOracle, mnist_test) -> None:
    counter = QueryCounter(quick_oracle)
    seen = []
    config = SubstituteConfig(substitute_epochs=6, train_epochs=1, query_budget=100)
    result = train_substitute(counter, mnist_test.x[:30], config, on_epoch=seen.append)
    assert counter.used("labelling") == 100  # 30 + 30 + 40 of the 60 new points at ρ = 2
    assert not result.completed and "budget" in (result.stop_reason or "")
    assert [r.set_size for r in result.reports] == [30, 60, 100]
    assert result.reports[-1].budget_exhausted and seen == result.reports
    assert len(result.y_train) == len(result.x_train) == 100


def test_counter_budget_is_honoured_too(quick_oracle: InProcessOracle, mnist_test) -> None:
    counter = QueryCounter(quick_oracle, budget=45)
    result = train_substitute(counter, mnist_test.x[:30], SubstituteConfig(substitute_epochs=3, train_epochs=1))
    assert counter.total == 45 and not result.completed


def test_substitute_beats_chance_by_a_wide_margin(quick_oracle: InProcessOracle, mnist_test) -> None:
    counter = QueryCounter(quick_oracle)
    holdout = (mnist_test.x[1000:2000], mnist_test.y[1000:2000])
    # The MLP preset keeps this test to seconds on a CPU; the CNN presets only do better.
    config = SubstituteConfig(preset="mlp", substitute_epochs=2, train_epochs=10)
    result = train_substitute(counter, mnist_test.x[:100], config, holdout=holdout)
    last = result.reports[-1]
    assert last.substitute_accuracy is not None and last.substitute_accuracy > 0.5  # chance: 0.1
    assert last.oracle_agreement is not None and last.oracle_agreement > 0.5
    # Agreement labels are queried once and counted apart from labelling.
    assert counter.used("agreement") == 1000 and last.agreement_queries == 1000
    assert counter.used("labelling") == 400 == last.labelling_queries


def test_same_seed_same_substitute_whatever_the_input_strides(quick_oracle: InProcessOracle, mnist_test) -> None:
    # NumPy gives a size-1 channel axis any stride (0 after x[:, None], 1 after fancy indexing) and torch
    # reads stride 1 as channels-last, whose convolutions round differently: the campaign (a slice) and
    # the benchmark (fancy indexing) used to train different substitutes from the same seed.
    images = np.ascontiguousarray(mnist_test.x[:24, 0])
    layouts = [images[:, None], images[:, None][np.arange(24)], images.reshape(24, 1, 28, 28)]
    assert len({a.strides for a in layouts}) == 3
    config = SubstituteConfig(substitute_epochs=2, train_epochs=2, batch_size=8)
    runs = [train_substitute(QueryCounter(quick_oracle), x0, config) for x0 in layouts]
    for other in runs[1:]:
        assert np.array_equal(other.x_train, runs[0].x_train) and np.array_equal(other.y_train, runs[0].y_train)
        for p, q in zip(runs[0].model.parameters(), other.model.parameters(), strict=True):
            assert torch.equal(p, q)
