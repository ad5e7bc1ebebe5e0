"""Decision-based attacks in-process: the engine's HopSkipJump or Sign-OPT (every image advanced together, one
oracle call per step) beside IBM ART's `HopSkipJump` or `SignOPTAttack` (one image at a time), on the LeNet MNIST
oracle, the same images and the same budget.

    .venv/bin/python -m pip install -e '.[bench]'      # adversarial-robustness-toolbox==1.20.1
    .venv/bin/python benchmarks/decision_inprocess.py --attack hopskipjump --images 100 --budget 5000
    .venv/bin/python benchmarks/decision_inprocess.py --attack sign_opt --images 100 --budget 5000

Untargeted L2, each side with its defaults, as a user would run it: HopSkipJump with the reference's (init 100
evaluations, at most 10,000, γ = 1, geometric step size); Sign-OPT with the reference's (k = 200, α = 0.2, β =
0.001, 100 starting directions), ART's `query_limit` set to the budget. Images: the first N test images from
--offset (default 5000, away from the tests' images) that the oracle labels correctly. Printed: the median L2 of
the best adversarial found within 500/1K/2K/5K queries per image (inf: none yet for most), success, wall time,
queries/s, the time the oracle's forward passes took inside the run, and the raw forward time of the same number
of queries in batches of 1,000. ART's curve is read the same way: a query counter wrapped around its classifier
keeps the least distorted adversarial among the inputs it was asked, and stops the image at the budget.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
import typer
from oracles import MODEL_DIR, correctly_labelled, frozen, load_oracle_model  # noqa: I001 - benchmarks/ is the script's directory

from bbrange.attacker.engine import InProcessOracle
from bbrange.attacker.engine.query_attacks.base import QueryAttack
from bbrange.attacker.engine.query_attacks.budget import PerImageQueries
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT
from bbrange.shared.datasets import load_dataset

ORACLE = "mnist"  # the LeNet recipe
CURVE = (500, 1_000, 2_000, 5_000)
OURS: dict[str, type[QueryAttack]] = {"hopskipjump": HopSkipJump, "sign_opt": SignOPT}


class TimedOracle:
    """The oracle's labels, with the calls, inputs and seconds spent in them."""

    def __init__(self, oracle: InProcessOracle) -> None:
        self.oracle, self.calls, self.inputs, self.seconds = oracle, 0, 0, 0.0

    def label(self, x: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        labels = self.oracle.label(x)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.inputs += len(x)
        return labels


class BudgetSpent(Exception):
    pass


class ArtTracker:
    """ART's classifier function: counts the current image's queries, keeps its least L2-distorted adversarial
    at each checkpoint, and stops ART (BudgetSpent) once the budget is reached."""

    def __init__(self, timed: TimedOracle, num_classes: int, budget: int, checkpoints: tuple[int, ...]) -> None:
        self.timed, self.num_classes, self.budget, self.checkpoints = timed, num_classes, budget, checkpoints
        self.x0 = np.zeros(0)
        self.clean, self.used, self.best = -1, 0, np.inf
        self.curve: list[float] = []

    def start(self, x0: np.ndarray, clean: int) -> None:
        self.x0, self.clean, self.used, self.best, self.curve = x0, clean, 0, np.inf, []

    def finish(self) -> list[float]:
        return self.curve + [self.best] * (len(self.checkpoints) - len(self.curve))  # stopped early: what it had

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)[: max(self.budget - self.used, 0)]  # past the budget: never asked
        labels = self.timed.label(x) if len(x) else np.zeros(0, np.int64)
        dist = np.sqrt(((x - self.x0) ** 2).reshape(len(x), -1).sum(1))
        for row in range(len(x)):
            if labels[row] != self.clean:
                self.best = min(self.best, float(dist[row]))
            self.used += 1
            if len(self.curve) < len(self.checkpoints) and self.used == self.checkpoints[len(self.curve)]:
                self.curve.append(self.best)
        if self.used >= self.budget:
            raise BudgetSpent
        return np.eye(self.num_classes, dtype=np.float32)[labels]


def raw_forward_seconds(oracle: InProcessOracle, n: int, shape: tuple[int, ...]) -> float:
    x = np.random.default_rng(1).uniform(0, 1, (min(n, 10_000), *shape)).astype(np.float32)
    start, done = time.perf_counter(), 0
    while done < n:
        take = min(len(x), n - done)
        for i in range(0, take, 1000):
            oracle.label(x[i : min(i + 1000, take)])
        done += take
    return time.perf_counter() - start


def medians(curve: np.ndarray, checkpoints: tuple[int, ...]) -> str:
    return "  ".join(f"{c:>5}: {np.median(curve[:, k]):.3f}" for k, c in enumerate(checkpoints))


def run_ours(name: str, oracle: InProcessOracle, x: np.ndarray, clean: np.ndarray, budget: int,
             checkpoints: tuple[int, ...], seed: int) -> None:
    timed = TimedOracle(oracle)
    queries = PerImageQueries(timed.label, x, lambda labels, images: labels != clean[images], norm="l2",
                              max_queries_per_image=budget, checkpoints=checkpoints)
    attack = OURS[name](norm="l2", max_queries_per_image=budget, checkpoints=checkpoints, batch_size=len(x))
    start = time.perf_counter()
    attack.search(queries, None, np.random.default_rng(seed), lambda fraction: None)
    wall = time.perf_counter() - start
    r = queries.result()
    again = oracle.label(r.x_adv[r.success])
    assert (again != clean[r.success]).all(), "an adversarial the oracle does not confirm"
    total = int(r.queries.sum())
    forward = raw_forward_seconds(oracle, total, x.shape[1:])
    print(f"engine {name:<12} median L2 at  {medians(r.at_checkpoints, checkpoints)}")
    print(f"  success {r.success.mean():.0%}, {total:,} queries in {timed.calls:,} calls, wall {wall:.1f} s, "
          f"{total / wall:,.0f} queries/s; oracle time in the run {timed.seconds:.1f} s "
          f"(attack's own work {wall - timed.seconds:.1f} s); raw forward of {total:,} queries {forward:.1f} s")


def run_art(name: str, oracle: InProcessOracle, x: np.ndarray, clean: np.ndarray, budget: int,
            checkpoints: tuple[int, ...], num_classes: int, seed: int) -> None:
    try:
        from art.attacks.evasion import HopSkipJump as ArtHopSkipJump
        from art.attacks.evasion import SignOPTAttack
        from art.estimators.classification import BlackBoxClassifier
    except ImportError:
        print("ART is not installed: .venv/bin/python -m pip install -e '.[bench]'")
        return
    timed = TimedOracle(oracle)
    tracker = ArtTracker(timed, num_classes, budget, checkpoints)
    classifier = BlackBoxClassifier(tracker, x.shape[1:], num_classes, clip_values=(0.0, 1.0))
    attack = (ArtHopSkipJump(classifier, targeted=False, norm=2, max_iter=100_000, max_eval=10_000, init_eval=100,
                             init_size=100, verbose=False) if name == "hopskipjump" else
              SignOPTAttack(classifier, targeted=False, query_limit=budget, verbose=False))
    np.random.seed(seed)  # ART draws from numpy's global generator
    curves, used = [], 0
    start = time.perf_counter()
    for i in range(len(x)):
        tracker.start(x[i], int(clean[i]))
        with contextlib.suppress(BudgetSpent):  # the image's budget is spent: what the tracker saw is its result
            attack.generate(x[i : i + 1])
        curves.append(tracker.finish())
        used += tracker.used
    wall = time.perf_counter() - start
    curve = np.array(curves)
    print(f"ART {name:<15} median L2 at  {medians(curve, checkpoints)}")
    print(f"  success {np.isfinite(curve[:, -1]).mean():.0%}, {used:,} queries in {timed.calls:,} calls, wall "
          f"{wall:.1f} s, {used / wall:,.0f} queries/s; oracle time in the run {timed.seconds:.1f} s")


def load_or_train(device: torch.device) -> tuple[torch.nn.Module, dict]:
    if not (MODEL_DIR / f"{ORACLE}.json").exists():
        from bbrange.oracle.models.training import train_oracle

        print(f"training the {ORACLE} oracle into {MODEL_DIR} (once)")
        train_oracle(ORACLE, MODEL_DIR, device=device)
    return load_oracle_model(ORACLE, device)


def main(attack: str = typer.Option("hopskipjump", help="hopskipjump or sign_opt"),
         images: int = typer.Option(100, help="Images attacked"),
         budget: int = typer.Option(5_000, help="Queries per image"),
         offset: int = typer.Option(5_000, help="First test image considered"),
         art: bool = typer.Option(True, help="Run ART's implementation beside"),
         seed: int = 0, device: str = "cpu") -> None:
    if attack not in OURS:
        raise typer.BadParameter(f"choose one of {', '.join(OURS)}", param_hint="--attack")
    on = torch.device(device)
    model, card = load_or_train(on)
    oracle = InProcessOracle(frozen(model), tuple(card["input_shape"]), card["num_classes"], on)
    test = load_dataset("mnist", "test", download=False)
    x, clean = correctly_labelled(oracle, test.x, test.y, offset, images, candidates=4)
    checkpoints = tuple(c for c in CURVE if c < budget) + (budget,)
    print(f"{len(x)} MNIST test images from {offset} (labelled correctly by the oracle), budget {budget:,}/image, "
          f"untargeted L2, torch threads {torch.get_num_threads()}")
    run_ours(attack, oracle, x, clean, budget, checkpoints, seed)
    if art:
        run_art(attack, oracle, x, clean, budget, checkpoints, card["num_classes"], seed)


if __name__ == "__main__":
    typer.run(main)
