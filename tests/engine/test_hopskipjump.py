"""HopSkipJump on the quick MNIST oracle: it finds adversarials for most images within a small budget, its
distortion falls with queries, every query it used is one the oracle counted, no image spends past its budget,
and what it returns the oracle confirms."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from torch import nn

from bbrange.attacker.engine import InProcessOracle
from bbrange.attacker.engine.oracles import QueryCounter
from bbrange.attacker.engine.query_attacks.boundary import estimate_normal
from bbrange.attacker.engine.query_attacks.budget import DecisionResult, PerImageQueries
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
from bbrange.shared.perturbations import Norm

N, BUDGET, CHECKPOINTS = 10, 600, (150, 600)


def run_attack(attack: HopSkipJump, oracle: InProcessOracle, x: np.ndarray, clean: np.ndarray,
               targets: np.ndarray | None, starts: np.ndarray | None) -> tuple[DecisionResult, QueryCounter]:
    counter = QueryCounter(oracle)

    def adversarial(labels: np.ndarray, images: np.ndarray) -> np.ndarray:
        return labels == targets[images] if targets is not None else labels != clean[images]

    queries = PerImageQueries(lambda xs: counter.label(xs, "labelling"), x, adversarial, norm=attack.norm,
                              max_queries_per_image=attack.max_queries_per_image, checkpoints=attack.checkpoints)
    attack.search(queries, starts, np.random.default_rng(0), lambda fraction: None)
    return queries.result(), counter


@pytest.fixture(scope="module")
def images(mnist_test, quick_oracle_model: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """N test images, the oracle's clean labels, a target class each, and an image the oracle gives it."""
    oracle = InProcessOracle(quick_oracle_model, (1, 28, 28), 10)
    x = mnist_test.x[:N]
    clean = oracle.label(x)
    pool_x = mnist_test.x[1000:1500]
    pool_labels = oracle.label(pool_x)
    targets = (clean + 1) % 10
    starts = np.stack([pool_x[np.flatnonzero(pool_labels == t)[0]] for t in targets])
    return x, clean, targets, starts


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("targeted", [False, True])
def test_finds_confirmed_adversarials_that_shrink_with_queries(
        norm: Norm, targeted: bool, images: tuple[np.ndarray, ...], quick_oracle: InProcessOracle) -> None:
    x, clean, targets, starts = images
    attack = HopSkipJump(norm=norm, target="next" if targeted else None, max_queries_per_image=BUDGET, checkpoints=CHECKPOINTS)
    result, counter = run_attack(attack, quick_oracle, x, clean, targets if targeted else None,
                                 starts if targeted else None)
    assert counter.total == int(result.queries.sum())
    assert result.queries.max() <= BUDGET
    assert result.success.mean() >= 0.8
    labels = quick_oracle.label(result.x_adv[result.success])
    expected = labels == targets[result.success] if targeted else labels != clean[result.success]
    assert expected.all()
    first, last = np.median(result.at_checkpoints[result.success], axis=0)[[0, -1]]
    assert last < first


def test_a_targeted_image_without_a_start_the_oracle_confirms_spends_one_query(
        images: tuple[np.ndarray, ...], quick_oracle: InProcessOracle) -> None:
    x, clean, targets, starts = images
    wrong = starts.copy()
    wrong[:5] = x[:5]  # the clean images: not of the target class
    attack = HopSkipJump(norm="l2", target="next", max_queries_per_image=300, checkpoints=(100, 300))
    result, counter = run_attack(attack, quick_oracle, x, clean, targets, wrong)
    assert result.queries[:5].tolist() == [1] * 5 and not result.success[:5].any()
    assert counter.total == int(result.queries.sum())


def test_grid_search_and_a_tight_budget(images: tuple[np.ndarray, ...], quick_oracle: InProcessOracle) -> None:
    x, clean, _, _ = images
    attack = HopSkipJump(norm="l2", stepsize_search="grid_search", max_queries_per_image=250, checkpoints=(100, 250),
                         batch_size=5)
    result, counter = run_attack(attack, quick_oracle, x, clean, None, None)
    assert counter.total == int(result.queries.sum()) and result.queries.max() <= 250
    assert result.success.mean() >= 0.8
    assert (quick_oracle.label(result.x_adv[result.success]) != clean[result.success]).all()


def test_targeted_is_a_setting_of_the_instance() -> None:
    assert HopSkipJump(target="next").target == "next" and HopSkipJump().target is None
    with pytest.raises(ValueError, match="stepsize_search"):
        HopSkipJump(stepsize_search="line")


def half_space(calls: list[int]) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """A linear oracle on 4×4 inputs: class 1 where the mean pixel passes 0.5; records each call's size."""
    w = np.ones(16) / 4.0

    def label(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return (x.reshape(len(x), -1) @ w > 2.0).astype(np.int64)
    return w, label


def test_the_normal_estimate_of_every_image_comes_from_one_call() -> None:
    calls: list[int] = []
    w, label = half_space(calls)
    x = np.random.default_rng(1).uniform(0.3, 0.7, (6, 16)).astype(np.float32)
    x += ((2.0 - x @ w) / (w @ w))[:, None] * w  # on the boundary
    queries = PerImageQueries(label, x.reshape(6, 1, 4, 4), lambda labels, images: labels == 1, norm="l2",
                              max_queries_per_image=400)
    queries.queries[5] = 370  # this image has 30 queries left: it gets 30 rows, not 200
    grad = estimate_normal(queries, np.arange(6), x, np.full(6, 0.05), 200, "l2", np.random.default_rng(0), (1, 4, 4))
    assert calls == [5 * 200 + 30] and queries.queries.tolist() == [200] * 5 + [400]
    assert (grad[:5] @ (w / np.linalg.norm(w)) > 0.8).all()


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_oracle_calls_do_not_grow_with_the_number_of_images_and_it_converges(norm: Norm) -> None:
    def calls_for(n: int) -> int:
        calls: list[int] = []
        w, label = half_space(calls)
        x = np.random.default_rng(2).uniform(0.0, 0.4, (n, 1, 4, 4)).astype(np.float32)
        queries = PerImageQueries(label, x, lambda labels, images: labels == 1, norm=norm, max_queries_per_image=800,
                                  checkpoints=(100, 800))
        HopSkipJump(norm=norm, max_queries_per_image=800).search(queries, None, np.random.default_rng(0), lambda f: None)
        result = queries.result()
        assert result.success.all() and (result.queries == 800).all() and sum(calls) == result.queries.sum()
        nearest = (2.0 - x.reshape(n, -1) @ w) / (np.linalg.norm(w) if norm == "l2" else np.abs(w).sum())
        assert (result.distortion <= 1.1 * nearest).all()  # within 10% of the half-space's nearest point
        return len(calls)

    one, many = calls_for(1), calls_for(16)
    assert many <= 1.5 * one
