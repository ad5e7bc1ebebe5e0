"""What a defence that masks gradients does not stop: decision-based L∞ attacks beside transfer and noise, against
the undefended LeNet oracle and the FGSM- and ensemble-adversarially-trained ones, on the same images.

    .venv/bin/python benchmarks/decision_defences.py                 # 100 images, 5,000 queries per image
    .venv/bin/python benchmarks/decision_defences.py --oracle mnist-fgsm-adv --images 50

Rows, per oracle, all on the same evaluation images (the first --images test images from 5,000 that the oracle
labels correctly, so that a changed label is a misclassification), all at L∞ ε = 0.3:
- transfer: the paper's attack, FGSM ε = 0.3 crafted on a substitute (papernot-mnist, S0 = the first 150 test
  images, ρ = 6, λ = −0.1: 9,600 labelling queries, about 96 per image over 100 images, plus 1 per image to label
  the example);
- HopSkipJump L∞ and RayS, each with the reference's defaults and --budget queries per image, every image
  advanced together: success = an adversarial with L∞ ≤ 0.3 found within the budget (and within 1,000);
- beside each, random noise: the same images moved by random ±0.3 signs, labelled by the same oracle.
Nothing is tuned here: every setting is the paper's or the reference code's default.
Train the defended oracles first: bbrange oracle train --dataset mnist --recipe mnist-fgsm-adv --name mnist-fgsm-adv
(and mnist-ens-adv).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
import typer
from oracles import correctly_labelled, label_oracle  # noqa: I001 - benchmarks/ is the script's directory

from bbrange.attacker.engine import (
    FGSM,
    BlackBoxAttack,
    InProcessOracle,
    QueryCounter,
    SubstituteConfig,
    distortion,
    run_blackbox_attack,
)
from bbrange.attacker.engine.attack import CraftingContext
from bbrange.attacker.engine.query_attacks.base import QueryAttack
from bbrange.attacker.engine.query_attacks.budget import DecisionResult
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
from bbrange.attacker.engine.query_attacks.measures import QueryMeasures
from bbrange.attacker.engine.query_attacks.rays import RayS
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import resolve_device

EPS = 0.3
S0 = 150


def transfer_row(oracle: InProcessOracle, attack: FGSM, x0: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int,
                 device: torch.device) -> tuple[float, float | None, float, str]:
    """The paper's attack through the engine's pipeline: success, noise, queries per image and a note."""
    counter = QueryCounter(oracle)
    result = run_blackbox_attack(counter, x0, x, y, BlackBoxAttack(SubstituteConfig(seed=seed), attack),
                                 device=device)
    assert result.report is not None
    usage = counter.usage.by_phase
    spent = (usage["labelling"] + usage["evaluation"]) / len(x)
    acc = result.substitute.reports[-1].substitute_accuracy if result.substitute else None
    return (result.report.misclassification_rate or 0.0, result.report.noise_rate, spent,
            f"{usage['labelling']:,} labelling queries, substitute accuracy {acc or 0:.2%}")


def decision_row(oracle: InProcessOracle, attack: QueryAttack, x: np.ndarray, clean: np.ndarray, seed: int,
                 device: torch.device) -> tuple[float, float | None, float, str]:
    """A decision-based attack's success at L∞ ≤ EPS within its budget, the noise baseline at that size (the
    attack's own measures), queries per image, and the success within 1,000 queries and the median curve."""
    counter = QueryCounter(oracle)
    context = CraftingContext(None, counter, x, clean, counter.num_classes, seed, device)
    crafted = attack.craft_set(context, None, lambda fraction: None)
    found = crafted.details
    assert isinstance(found, DecisionResult)
    measures = attack.measures(replace(context, details=found), crafted.x_adv, None, distortion(x, crafted.x_adv))
    assert isinstance(measures, QueryMeasures)
    point = next(p for p in measures.success_by_size()["points"] if abs(p["size"] - EPS) < 1e-9)
    within = {c: float(np.mean(found.at_checkpoints[:, k] <= EPS)) for k, c in enumerate(found.checkpoints)}
    curve = measures.distortion_by_queries()
    medians = ", ".join(f"{q:,}: {m:.3f}" for q, m in zip(curve["queries"], curve["median"], strict=True))
    return (point["success_rate"], point["noise_rate"], float(found.queries.mean()),
            f"success within 1K queries {within.get(1_000, float('nan')):.0%}; median L∞ at {medians}")


def main(oracles: list[str] = typer.Option(["mnist", "mnist-fgsm-adv", "mnist-ens-adv"], "--oracle"),
         images: int = typer.Option(100, help="Evaluation images (test images from 5,000, labelled correctly)"),
         budget: int = typer.Option(5_000, help="Queries per image of the decision-based attacks"),
         seed: int = 0, device: str = "auto") -> None:
    dev = resolve_device(device)
    data = load_dataset("mnist", "test")
    checkpoints = tuple(c for c in (100, 500, 1_000, 2_000) if c < budget) + (budget,)
    print(f"L∞ ε = {EPS}; {images} test images from 5,000 per oracle (labelled correctly); decision-based budget "
          f"{budget:,} per image; transfer: FGSM on papernot-mnist, S0 = {S0}, ρ = 6; seed {seed}; device {dev}, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    table = []
    for name in oracles:
        oracle, card = label_oracle(name, dev)
        x, y = correctly_labelled(oracle, data.x, data.y, 5_000, images)
        print(f"\n{name} ({card['architecture']}, recipe {(card.get('training') or {}).get('recipe')}, test accuracy "
              f"{card['test_accuracy']:.2%})", flush=True)
        runs: list[tuple[str, FGSM | QueryAttack]] = [
            ("transfer FGSM", FGSM(eps=EPS)),
            ("HopSkipJump L∞", HopSkipJump(norm="linf", max_queries_per_image=budget, checkpoints=checkpoints,
                                           batch_size=len(x))),
            ("RayS L∞", RayS(max_queries_per_image=budget, checkpoints=checkpoints, batch_size=len(x))),
        ]
        for label, attack in runs:
            started = time.perf_counter()
            rate, noise, spent, note = (decision_row(oracle, attack, x, y, seed, dev) if isinstance(attack, QueryAttack)
                                        else transfer_row(oracle, attack, data.x[:S0], x, y, seed, dev))
            table.append((name, card["test_accuracy"], label, rate, noise, spent))
            print(f"  {label:<15} success at L∞ ≤ {EPS}: {rate:7.2%}   random ±{EPS} noise "
                  f"{'-' if noise is None else f'{noise:.2%}':>7}   {spent:,.0f} queries per image; {note}; "
                  f"{time.perf_counter() - started:.0f} s", flush=True)

    print(f"\n{'oracle':<15} {'clean acc':>9}  {'attack':<15} {'success ε=0.3':>13} {'noise ±0.3':>10} "
          f"{'queries/image':>13}")
    for name, acc, label, rate, noise, spent in table:
        print(f"{name:<15} {acc:>9.2%}  {label:<15} {rate:>13.2%} {'-' if noise is None else f'{noise:.2%}':>10} "
              f"{spent:>13,.0f}")


if __name__ == "__main__":
    typer.run(main)
