from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bbrange.attacker.engine import (
    InProcessOracle,
    QueryCounter,
    adversarial_distance,
    distortion,
    hardness,
    pair_matrices,
    transfer,
)


def test_distortion_norms() -> None:
    x = np.zeros((2, 1, 2, 2), dtype=np.float32)
    x_adv = x.copy()
    x_adv[0, 0, 0, 0] = 1.0
    x_adv[0, 0, 1, 1] = 0.5
    d = distortion(x, x_adv)
    assert d.l0.tolist() == [0.5, 0.0]
    assert d.l2[0] == pytest.approx(np.sqrt(1.25)) and d.linf.tolist() == [1.0, 0.0]
    assert d.mean_l0(np.array([True, False])) == 0.5


def test_pair_matrices_and_hardness() -> None:
    m = pair_matrices(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), np.array([True, False, True, True]),
                      np.array([0.1, 0.9, 0.2, 0.4]), 2)
    assert m.counts.tolist() == [[0, 2], [2, 0]]
    assert m.success_rate[0, 1] == 0.5 and m.success_rate[1, 0] == 1.0 and np.isnan(m.success_rate[0, 0])
    assert m.distortion_successful[0, 1] == pytest.approx(0.1)
    assert m.distortion_successful[1, 0] == pytest.approx(0.3)
    tau = np.array([0.0, 0.5, 1.0])[:, None, None]
    eps = np.array([0.0, 0.02, 0.04])[:, None, None]
    # Trapezoids: 0.5·0.01 + 0.5·0.03 = 0.02.
    assert hardness(tau, eps)[0, 0] == pytest.approx(0.02)


def test_transfer_costs_evaluation_queries() -> None:
    torch.manual_seed(0)
    oracle = QueryCounter(InProcessOracle(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), (1, 2, 2), 3))
    x = np.random.default_rng(0).random((25, 1, 2, 2), dtype=np.float32)
    labels = oracle.label(x, "agreement")
    report = transfer(oracle, x, labels, clean_oracle_labels=labels, targets=labels, batch_size=10)
    assert report.queries == 25 == oracle.used("evaluation")
    assert report.misclassification_rate == 0.0 and report.label_change_rate == 0.0 and report.target_rate == 1.0
    assert report.transfer_rate == 1.0  # targeted: success is reaching the target


def test_adversarial_distance_in_unit_interval() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(9, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.rand(4, 1, 3, 3)
    t = torch.tensor([0, 1, 2, 0])
    single = adversarial_distance(model, x, t)
    pairs = adversarial_distance(model, x, t, pairs=True, chunk_elems=50)
    assert ((single >= 0) & (single <= 1)).all() and ((pairs >= 0) & (pairs <= 1)).all()
    # Pairs satisfy the constraints at least as often as single features can combine into them.
    assert (pairs <= 1.0).all()
