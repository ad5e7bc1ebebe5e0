"""CamouflagedCounter: natural images mixed into labelling requests, charged and counted, labels kept in place."""

from __future__ import annotations

import numpy as np
import pytest

from bbrange.attacker.engine import BudgetExhausted, CallableOracle, CamouflagedCounter


def _oracle(sent: list[np.ndarray]) -> CallableOracle:
    def labels_of(x: np.ndarray) -> np.ndarray:
        sent.append(x)
        return np.rint(x[:, 0, 0, 0] * 10).astype(np.int64)  # the label is readable from the input

    return CallableOracle(labels_of, (1, 2, 2), 11)


def test_natural_images_are_mixed_in_and_the_attack_gets_its_own_labels() -> None:
    sent: list[np.ndarray] = []
    pool = np.full((50, 1, 2, 2), 1.0, np.float32)  # label 10: never one of the attack's
    counter = CamouflagedCounter(_oracle(sent), pool, ratio=2.0, seed=1)
    x = (np.arange(6, dtype=np.float32) / 10).reshape(6, 1, 1, 1).repeat(2, 2).repeat(2, 3)
    assert counter.label(x, "labelling").tolist() == [0, 1, 2, 3, 4, 5]
    assert len(sent[0]) == 18 and (np.rint(sent[0][:, 0, 0, 0] * 10) == 10).sum() == 12
    assert counter.used("labelling") == 18 and counter.camouflage_queries == 12
    counter.label(x, "evaluation")  # other phases are not camouflaged
    assert len(sent[1]) == 6 and counter.used("evaluation") == 6


def test_the_budget_covers_the_camouflage() -> None:
    counter = CamouflagedCounter(_oracle([]), np.zeros((10, 1, 2, 2), np.float32), ratio=1.0, budget=9)
    assert counter.remaining("labelling") == 4  # 4 attack inputs + 4 natural ones fit in 9
    with pytest.raises(BudgetExhausted):
        counter.label(np.zeros((5, 1, 2, 2), np.float32))
    assert counter.used("labelling") == 0
