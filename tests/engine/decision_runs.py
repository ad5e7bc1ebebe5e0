"""Running a decision-based attack on the quick MNIST oracle for the engine's tests: the images, the counted
oracle, the `PerImageQueries` the attack asks through, and the checks every such attack must pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from bbrange.attacker.engine import InProcessOracle, QueryCounter
from bbrange.attacker.engine.query_attacks.base import QueryAttack
from bbrange.attacker.engine.query_attacks.budget import DecisionResult, PerImageQueries, distances
from bbrange.attacker.engine.query_attacks.evasion import Evasion
from bbrange.shared.datasets import load_mnist


@dataclass(frozen=True)
class DecisionRun:
    x: np.ndarray
    label: np.ndarray  # the oracle's clean labels
    targets: np.ndarray | None
    counter: QueryCounter
    result: DecisionResult


@contextmanager
def one_thread() -> Iterator[None]:
    """The oracle answers a few rows per call: torch's threads cost more than they give on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_decision_attack(attack: QueryAttack, oracle: InProcessOracle, n: int = 20, *, targeted: bool = False,
                        seed: int = 0, evasion: Evasion | None = None) -> DecisionRun:
    """`attack` on the first n test images the oracle labels correctly (targeted: to the next class, from the
    first other test image the oracle gives that class)."""
    test = load_mnist("test", download=False)
    x_all = np.asarray(test.x[:500], np.float32)
    with one_thread():
        labels = oracle.label(x_all)
        keep = np.flatnonzero(labels == test.y[:500])[:n]
        x, label = x_all[keep], labels[keep]
        targets, starts = None, None
        if targeted:
            targets = (label + 1) % 10
            starts = np.stack([x_all[np.flatnonzero(labels == t)[0]] for t in targets])
        counter = QueryCounter(oracle)

        def adversarial(answers: np.ndarray, images: np.ndarray) -> np.ndarray:
            out: np.ndarray = answers == targets[images] if targets is not None else answers != label[images]
            return out

        queries = PerImageQueries(counter.label, x, adversarial, norm=attack.norm,
                                  max_queries_per_image=attack.max_queries_per_image, checkpoints=attack.checkpoints,
                                  evasion=evasion, evasion_seed=seed)
        attack.search(queries, starts, np.random.default_rng(seed), lambda done: None)
        return DecisionRun(x, label, targets, counter, queries.result())


def check_honest(run: DecisionRun, oracle: InProcessOracle, budget: int) -> None:
    """Every query counted for its image, none past its budget, every example confirmed by the oracle."""
    r = run.result
    assert r.queries.sum() == run.counter.total
    assert r.queries.max() <= budget
    found = np.flatnonzero(r.success)
    with one_thread():
        relabel = oracle.label(r.x_adv[found])
    expected = run.targets[found] if run.targets is not None else None
    assert (relabel == expected).all() if expected is not None else (relabel != run.label[found]).all()
    assert np.allclose(distances(run.x[found], r.x_adv[found], r.norm), r.distortion[found])
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
