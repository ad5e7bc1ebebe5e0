"""Transfer levers (issue 22): which of the attacker's choices moves transfer from a substitute to the LeNet MNIST
oracle, one lever at a time, at ε = 0.3 (L∞), every row beside the oracle's clean accuracy and random ±ε noise on
the same images.

    .venv/bin/python benchmarks/transfer_levers.py                          # ~10 min on 2 quiet cores (1 seed)
    .venv/bin/python benchmarks/transfer_levers.py --seeds 5 --images 9000 --tune-images 850   # the full one (hours)
    .venv/bin/python benchmarks/transfer_levers.py --images 200 --tune-images 100 --rho 4 --train-epochs 5  # a look

Settings (printed when it starts). The oracle: `mnist` in BBRANGE_MODEL_DIR, label-only, in process. The
substitutes, per seed: S0 = the first 150 test images, ρ = 6, λ = −0.1 (9,600 labelling queries), 10 training
epochs per substitute epoch; an ensemble of papernot-mnist, lenet and mlp trained on those same labels, augmented by
its first member, so that its first member is exactly the lone papernot-mnist substitute (one training per seed).
Images: S0 = test[0:150]; the tuning split test[150:150+T]; the evaluation split test[1000:1000+N]; disjoint.

The levers, each row differing from the baseline (FGSM, cross-entropy, the lone substitute) in one choice:
    method     FGSM, PGD, I-FGSM, MI-FGSM, DI-FGSM, R+FGSM (cross-entropy, the lone substitute)
    loss       each method but FGSM with Carlini & Wagner's margin instead (the lone substitute)
    ensemble   each method (cross-entropy) crafted on the ensemble's averaged logits
Each method's one tuned setting is chosen per seed on the tuning split (the highest transfer to the oracle, with
cross-entropy on the lone substitute) from a grid of its paper's defaults and the alternative the transfer
literature uses: PGD 40 steps of 0.01 (Madry) or 10 of 0.075 (2.5·ε/T); I-FGSM and DI-FGSM Kurakin et al.'s
80 steps of 1/255 or 10 of ε/10 (Dong et al.'s transfer protocol); MI-FGSM μ = 1.0 or 0.5; R+FGSM α = 0.05 (the
authors' MNIST code) or ε/2 (the paper's ImageNet). The chosen setting then serves every row of that method.
Transfer is the share of evaluation images the oracle misclassifies (true labels); noise: the same for random ±ε.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch
import typer
from oracles import frozen, label_oracle  # noqa: I001 - benchmarks/ is the script's directory

from bbrange.attacker.engine import QueryCounter, SubstituteConfig, SubstituteEnsemble, attack_class, train_substitute
from bbrange.attacker.engine.attack import Attack
from bbrange.attacker.engine.evaluation import TransferReport
from bbrange.attacker.engine.sizes import transfer_at_sizes
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import as_batch, resolve_device
from bbrange.shared.perturbations import TrainingAttack

EPS = 0.3
METHODS = ("fgsm", "pgd", "ifgsm", "mifgsm", "difgsm", "rfgsm")
ENSEMBLE = ("papernot-mnist", "lenet", "mlp")
TEN_STEPS = {"steps": 10, "step_size": EPS / 10}
GRID: dict[str, tuple[dict[str, Any], ...]] = {
    "fgsm": ({},),
    "pgd": ({"steps": 40, "step_size": 0.01}, {"steps": 10, "step_size": 2.5 * EPS / 10}),
    "ifgsm": ({}, TEN_STEPS),
    "mifgsm": ({"momentum": 1.0}, {"momentum": 0.5}),
    "difgsm": ({}, TEN_STEPS),
    "rfgsm": ({"alpha": 0.05}, {"alpha": EPS / 2}),
}
Row = tuple[str, str, str, str]  # lever, method, loss, substitute


def engine_attack(method: str, loss: str, setting: dict[str, Any]) -> Attack:
    extra = {} if method == "fgsm" else {"loss": loss}
    attack: Attack = attack_class(method)(eps=EPS, **extra, **setting)  # type: ignore[call-arg]
    return attack


def transfer(counter: QueryCounter, model: torch.nn.Module, attack: Attack, x: np.ndarray, y: np.ndarray,
             clean: np.ndarray, seed: int, device: torch.device) -> TransferReport:
    """The attack crafted on `model`, labelled by the oracle beside its noise baseline (pipeline's sizes.py)."""
    reports, stop = transfer_at_sizes(counter, model, x, y, clean, ((EPS, attack),), noise_baseline=True, seed=seed,
                                      device=device, evaluate=lambda c, xs, phase: (c.label(xs, phase), None))
    assert stop is None and reports
    return reports[0].report


@torch.no_grad()
def agreement(model: torch.nn.Module, x: np.ndarray, oracle_labels: np.ndarray, device: torch.device) -> float:
    labels = torch.cat([model(as_batch(x[i : i + 1000], device)).argmax(1).cpu() for i in range(0, len(x), 1000)])
    return float((labels.numpy() == oracle_labels).mean())


LEVERS = ("method", "loss", "ensemble")


def rows_of_lever(methods: tuple[str, ...] = METHODS, levers: tuple[str, ...] = ("method", "loss", "ensemble"),
                  ) -> list[Row]:
    rows: list[Row] = [("method", m, "ce", "single") for m in methods]
    rows += [("loss", m, "margin", "single") for m in methods if m != "fgsm" and "loss" in levers]
    rows += [("ensemble", m, "ce", "ensemble") for m in methods if "ensemble" in levers]
    return rows


def mean_sd(values: list[float]) -> str:
    return f"{100 * np.mean(values):5.1f}" + (f" ± {100 * np.std(values, ddof=1):4.1f}" if len(values) > 1 else "")


def main(images: int = typer.Option(500, help="Evaluation images: test[1000:1000+N] (at most 9,000)"),
         tune_images: int = typer.Option(200, help="Tuning images: test[150:150+T] (at most 850)"),
         seeds: int = typer.Option(1, help="Substitutes per lever (seeds 0..n-1), each tuned on its own"),
         rho: int = typer.Option(6, help="Substitute epochs ρ"),
         train_epochs: int = typer.Option(10, help="Training epochs per substitute epoch"),
         method: list[str] = typer.Option(list(METHODS), help="Crafting methods measured (repeat; default all)"),
         lever: list[str] = typer.Option(["method", "loss", "ensemble"], help="Levers measured besides the method "
                                         "(repeat): loss, ensemble (without it no ensemble is trained)"),
         adversarial_training: str = typer.Option("none", help="Train every substitute half on its own FGSM or PGD "
                                                  "examples at ε (fgsm, pgd; none)"),
         oracle_name: str = typer.Option("mnist", "--oracle", help="The oracle's model card (e.g. mnist-fgsm-adv)"),
         device: str = "auto") -> None:
    if not (0 < images <= 9000 and 0 < tune_images <= 850):
        raise typer.BadParameter("--images must be in 1..9000 and --tune-images in 1..850 (the splits are disjoint)")
    unknown = sorted(set(method) - set(METHODS)) + sorted(set(lever) - set(LEVERS))
    if unknown:
        raise typer.BadParameter(f"unknown method or lever: {', '.join(unknown)}")
    methods = tuple(m for m in METHODS if m in method)
    if adversarial_training not in ("none", "fgsm", "pgd"):
        raise typer.BadParameter("--adversarial-training: none, fgsm or pgd")
    adversarial = None if adversarial_training == "none" else TrainingAttack(adversarial_training, EPS)  # type: ignore[arg-type]
    levers = tuple(lever)
    rows = rows_of_lever(methods, levers)
    dev = resolve_device(device)
    oracle, card = label_oracle(oracle_name, dev)
    data = load_dataset("mnist", "test")
    x0, x_tune, y_tune = data.x[:150], data.x[150 : 150 + tune_images], data.y[150 : 150 + tune_images]
    x_eval, y_eval = data.x[1000 : 1000 + images], data.y[1000 : 1000 + images]
    print(f"oracle {oracle_name} ({card['architecture']}, test accuracy {card['test_accuracy']:.2%}); ε = {EPS} (L∞); "
          f"S0 = test[0:150], ρ = {rho}, λ = −0.1, {train_epochs} training epochs; substitute papernot-mnist"
          + (f", ensemble {' + '.join(ENSEMBLE)} (same labels, augmented by the first)" if "ensemble" in levers else "")
          + f"; methods {', '.join(methods)}; levers {', '.join(levers)}; adversarial training of the substitutes "
          f"{adversarial_training}; tuning split test[150:{150 + tune_images}], "
          f"evaluation split test[1000:{1000 + images}]; {seeds} seed(s); device {dev}, torch threads "
          f"{torch.get_num_threads()}", flush=True)
    results: dict[Row, list[TransferReport]] = defaultdict(list)
    agreements: dict[str, list[float]] = defaultdict(list)
    chosen: dict[str, list[str]] = defaultdict(list)
    for seed in range(seeds):
        counter = QueryCounter(oracle)
        started = time.perf_counter()
        with_ensemble = "ensemble" in levers
        config = SubstituteConfig(substitute_epochs=rho, train_epochs=train_epochs, seed=seed,
                                  ensemble=ENSEMBLE[1:] if with_ensemble else (), adversarial=adversarial)
        trained = frozen(train_substitute(counter, x0, config, device=dev).model)
        if with_ensemble:
            assert isinstance(trained, SubstituteEnsemble)
            models = {"single": trained.members[0], "ensemble": trained}
        else:
            models = {"single": trained}

        clean_tune, clean_eval = counter.label(x_tune, "agreement"), counter.label(x_eval, "agreement")
        for name, model in models.items():
            agreements[name].append(agreement(model, x_eval, clean_eval, dev))
        print(f"\nseed {seed}: substitutes trained in {time.perf_counter() - started:.0f} s on "
              f"{counter.used('labelling'):,} labels; agreement with the oracle on the evaluation split: "
              + ", ".join(f"{'lone' if n == 'single' else n} {a[-1]:.2%}" for n, a in agreements.items()), flush=True)
        settings: dict[str, dict[str, Any]] = {}
        for name in methods:
            scores = [transfer(counter, models["single"], engine_attack(name, "ce", s), x_tune, y_tune, clean_tune,
                               seed, dev).transfer_rate or 0.0 for s in GRID[name]]
            settings[name] = GRID[name][int(np.argmax(scores))]
            chosen[name].append(str(settings[name] or "paper defaults"))
            print(f"  tuning {name}: " + ", ".join(f"{s or 'defaults'} {r:.1%}" for s, r in zip(GRID[name], scores,
                                                                                                strict=True)),
                  flush=True)
        for row in rows:
            _, name, loss, substitute = row
            started = time.perf_counter()
            report = transfer(counter, models[substitute], engine_attack(name, loss, settings[name]), x_eval,
                              y_eval, clean_eval, seed, dev)
            results[row].append(report)
            print(f"  {' '.join(row):32} transfer {report.transfer_rate:.1%}, noise {report.noise_rate:.1%} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)

    clean = results[rows[0]][0].clean_accuracy or 0.0
    print(f"\nTransfer at ε = {EPS} over {seeds} seed(s), {images} evaluation images (mean ± sd, %); the oracle's clean "
          f"accuracy on them {clean:.2%}; agreement with the oracle: "
          + ", ".join(f"{'lone' if n == 'single' else n} {mean_sd(a).strip()}" for n, a in agreements.items())
          + "; settings chosen on the tuning split: " + "; ".join(f"{m} {', '.join(chosen[m])}" for m in methods))
    print(f"{'lever':9} {'method':7} {'loss':6} {'substitute':10} {'transfer':>13} {'noise':>13} {'lift':>13} "
          f"{'clean acc':>9}")
    for row in rows:
        reports = results[row]
        rates = [r.transfer_rate or 0.0 for r in reports]
        noise = [r.noise_rate or 0.0 for r in reports]
        print(f"{row[0]:9} {row[1]:7} {row[2]:6} {row[3]:10} {mean_sd(rates):>13} {mean_sd(noise):>13} "
              f"{mean_sd([a - b for a, b in zip(rates, noise, strict=True)]):>13} "
              f"{100 * np.mean([r.clean_accuracy or 0.0 for r in reports]):9.1f}")


if __name__ == "__main__":
    typer.run(main)
