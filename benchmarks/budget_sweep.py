"""The 2,000-query sweep: what a black-box attack limited to the paper's 2,000 labelling queries is missing.

    .venv/bin/python benchmarks/budget_sweep.py                # every setting, seed 0 (about 20 minutes)
    .venv/bin/python benchmarks/budget_sweep.py --setting lam-0.3-b32 --seeds 5

Every setting trains a substitute on at most 2,000 oracle labels (S0 = the first test images), crafts FGSM
ε = 0.3 on it from the 9,500 test images after the first 500 (outside every setting's S0) and sends them to
the LeNet oracle `mnist`, beside random ±0.3 noise on the same images. The settings change one thing at a
time from the paper's refinements (periodic step size τ = 3 and reservoir sampling σ = 3, κ = 400, from
S0 = 100): the sign flip of the periodic step, the reservoir, how S0 and ρ share the budget, the size of λ,
and the training steps per substitute epoch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import typer
from oracles import label_oracle  # noqa: I001 - benchmarks/ is the script's directory

from bbrange.attacker.engine import FGSM, BlackBoxAttack, QueryCounter, SubstituteConfig, run_blackbox_attack
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import resolve_device

REFINEMENTS: dict[str, Any] = {"periodic_step": True, "tau": 3, "reservoir": True, "sigma": 3, "kappa": 400}
RESERVOIR: dict[str, Any] = {"reservoir": True, "sigma": 3, "kappa": 400}
# name: (|S0|, SubstituteConfig fields); ρ and S0 are chosen so that the labelling queries are 2,000 or just under.
SETTINGS: dict[str, tuple[int, dict[str, Any]]] = {
    "paper-refinements": (100, {"substitute_epochs": 6, "lam": -0.1, **REFINEMENTS}),
    "reservoir-only": (100, {"substitute_epochs": 6, "lam": -0.1, **RESERVOIR}),
    "plain-125x2^4": (125, {"substitute_epochs": 4, "lam": -0.1}),
    "plain-125x2^4-30-epochs": (125, {"substitute_epochs": 4, "lam": -0.1, "train_epochs": 30}),
    "plain-250x2^3": (250, {"substitute_epochs": 3, "lam": -0.1}),
    "plain-500x2^2": (500, {"substitute_epochs": 2, "lam": -0.1}),
    "plain-62x2^5-lam-0.3": (62, {"substitute_epochs": 5, "lam": -0.3}),
    "lam-0.2": (125, {"substitute_epochs": 4, "lam": -0.2}),
    "lam-0.25": (125, {"substitute_epochs": 4, "lam": -0.25}),
    "lam-0.3": (125, {"substitute_epochs": 4, "lam": -0.3}),
    "lam-0.4": (125, {"substitute_epochs": 4, "lam": -0.4}),
    "lam-0.3-reservoir": (100, {"substitute_epochs": 6, "lam": -0.3, **RESERVOIR}),
    "lam-0.3-refinements": (100, {"substitute_epochs": 6, "lam": -0.3, **REFINEMENTS}),
    "lam-0.3-30-epochs": (125, {"substitute_epochs": 4, "lam": -0.3, "train_epochs": 30}),
    "lam-0.3-b64": (125, {"substitute_epochs": 4, "lam": -0.3, "batch_size": 64}),
    "lam-0.3-b32": (125, {"substitute_epochs": 4, "lam": -0.3, "batch_size": 32}),
    "lam-0.3-b16": (125, {"substitute_epochs": 4, "lam": -0.3, "batch_size": 16}),
    "lam-0.3-b32-20-epochs": (125, {"substitute_epochs": 4, "lam": -0.3, "batch_size": 32, "train_epochs": 20}),
}


def main(
    settings: list[str] = typer.Option(list(SETTINGS), "--setting", help=f"repeat; known: {', '.join(SETTINGS)}"),
    seeds: int = typer.Option(1, help="substitutes per setting (seeds 0..n-1)"),
    oracle_name: str = typer.Option("mnist", "--oracle"),
    device: str = typer.Option("auto"),
) -> None:
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise typer.BadParameter(f"unknown setting(s) {unknown}; known: {', '.join(SETTINGS)}")
    dev = resolve_device(device)
    data = load_dataset("mnist", "test")
    held = np.arange(500, len(data))  # outside the largest S0
    print(f"oracle {oracle_name}; FGSM ε=0.3 on the substitute from {len(held)} test images (indices 500..); "
          f"papernot-mnist substitute, Adam 1e-3, 10 epochs per ρ and batch 128 unless the setting says; device {dev}")
    oracle, _ = label_oracle(oracle_name, dev)  # label-only and stateless: every run gets its own counter
    print(f"{'setting':26s} {'seed':>4s} {'queries':>7s} {'sub. acc':>9s} {'agreement':>9s} {'transfer':>9s} "
          f"{'noise':>7s} {'lift':>7s}")
    for name in settings:
        s0, fields = SETTINGS[name]
        rates = []
        for seed in range(seeds):
            counter = QueryCounter(oracle)
            config = SubstituteConfig(seed=seed, **fields)
            result = run_blackbox_attack(counter, data.x[:s0], data.x[held], data.y[held],
                                         BlackBoxAttack(config, FGSM(eps=0.3)), device=dev)
            last, rep = result.substitute.reports[-1], result.report
            assert rep is not None and rep.noise_rate is not None
            rates.append(rep.misclassification_rate)
            print(f"{name:26s} {seed:4d} {counter.used('labelling'):7d} {last.substitute_accuracy:9.2%} "
                  f"{last.oracle_agreement:9.2%} {rep.misclassification_rate:9.2%} {rep.noise_rate:7.2%} "
                  f"{rep.misclassification_rate - rep.noise_rate:+7.2%}", flush=True)
        if seeds > 1:
            print(f"{name:26s} mean {np.mean(rates):.2%} ± {np.std(rates, ddof=1):.2%} over {seeds} seeds")


if __name__ == "__main__":
    typer.run(main)
