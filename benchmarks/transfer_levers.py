"""Transfer levers (issue 22): which of the attacker's choices moves transfer from a substitute to an oracle, one lever
at a time, at L∞ sizes ε, every row beside the oracle's clean accuracy and random ±ε noise on the same images.

    .venv/bin/python benchmarks/transfer_levers.py                          # ~10 min on 2 quiet cores (1 seed)
    .venv/bin/python benchmarks/transfer_levers.py --seeds 5 --images 9000 --tune-images 850   # the full one (hours)
    .venv/bin/python benchmarks/transfer_levers.py --dataset gtsrb --method pgd --lever method  # GTSRB, ε 0.1 and 0.15
    .venv/bin/python benchmarks/transfer_levers.py --images 200 --tune-images 100 --rho 4 --train-epochs 5  # a look

Settings (printed when it starts). The oracle: `--oracle` (default the dataset's own) in BBRANGE_MODEL_DIR,
label-only, in process. The substitutes, per seed: MNIST: papernot-mnist, S0 = the first `--s0` test images
(150), ρ = 6, λ = −0.1 (9,600 labelling queries), batch 128; GTSRB: gtsrb-substitute, S0 = the first `--s0` test
images of each of the 43 classes (10: 430), ρ = 4 (6,880 queries), batch 32 (benchmarks/blackbox_gtsrb.py's
setting); 10 training epochs per substitute epoch. The ensemble: MNIST papernot-mnist, lenet and mlp; GTSRB three
gtsrb-substitutes of their own initialisation; trained on the same labels, augmented by the first member, so that
its first member is exactly the lone substitute (one training per seed).
`--lam`, `--batch-size`, `--s0`, `--rho`, `--members` and `--augment-with` change the substitutes.
Images, disjoint: MNIST S0 = test[0:s0], the tuning split test[t:t+T] (t = `--tune-start`, default s0), the
evaluation split test[1000:1000+N]; GTSRB S0 as above, the tuning and evaluation splits the first T and the next N
of the other test images in a seeded shuffle (seed 0). Substitute settings are chosen with `--evaluate-on tuning`,
which reports every row on the tuning split instead, so that the evaluation images never take part in a choice.

The levers, each row differing from the baseline (FGSM, cross-entropy, the lone substitute) in one choice:
    method     FGSM, PGD, I-FGSM, MI-FGSM, DI-FGSM, R+FGSM (cross-entropy, the lone substitute)
    loss       each method but FGSM with Carlini & Wagner's margin instead (the lone substitute)
    ensemble   each method (cross-entropy) crafted on the ensemble's averaged logits
Each method's one tuned setting is chosen per seed and per ε on the tuning split (the highest transfer to the oracle,
with cross-entropy on the lone substitute) from a grid of its paper's defaults and the alternative the transfer
literature uses: PGD 40 steps of ε/30 (Madry: 0.01 at ε = 0.3) or 10 of 2.5·ε/10; I-FGSM and DI-FGSM Kurakin et
al.'s min(ε·255 + 4, 1.25·ε·255) steps of 1/255 or 10 of ε/10 (Dong et al.'s transfer protocol); MI-FGSM μ = 1.0 or
0.5; R+FGSM α = ε/6 (the authors' MNIST code: 0.05 at ε = 0.3) or ε/2 (the paper's ImageNet). The chosen setting then
serves every row of that method. Transfer is the share of evaluation images the oracle misclassifies (true labels);
noise: the same for random ±ε.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import typer
from blackbox_gtsrb import first_per_class  # noqa: I001 - benchmarks/ is the script's directory
from oracles import frozen, label_oracle, load_oracle_model

from bbrange.attacker.engine import QueryCounter, SubstituteConfig, SubstituteEnsemble, attack_class, train_substitute
from bbrange.attacker.engine.attack import Attack
from bbrange.attacker.engine.evaluation import TransferReport
from bbrange.attacker.engine.oracles import InProcessOracle
from bbrange.attacker.engine.sizes import transfer_at_sizes
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import as_batch, resolve_device
from bbrange.shared.perturbations import TrainingAttack

METHODS = ("fgsm", "pgd", "ifgsm", "mifgsm", "difgsm", "rfgsm")
LEVERS = ("method", "loss", "ensemble")


@dataclass(frozen=True)
class Setup:
    """What differs between the datasets: the substitutes, the default sizes and budget, S0's size."""

    presets: tuple[str, ...]  # the lone substitute first, then the ensemble's other members
    eps: tuple[float, ...]
    rho: int
    batch_size: int
    s0: int  # MNIST: the first s0 test images; GTSRB: the first s0 test images of each class


SETUPS = {"mnist": Setup(("papernot-mnist", "lenet", "mlp"), (0.3,), rho=6, batch_size=128, s0=150),
          "gtsrb": Setup(("gtsrb-substitute",) * 3, (0.1, 0.15), rho=4, batch_size=32, s0=10)}


def grid(method: str, eps: float) -> tuple[dict[str, Any], ...]:
    ten_steps = {"steps": 10, "step_size": eps / 10}
    return {"fgsm": ({},), "pgd": ({"steps": 40}, {"steps": 10, "step_size": 2.5 * eps / 10}), "ifgsm": ({}, ten_steps),
            "mifgsm": ({"momentum": 1.0}, {"momentum": 0.5}), "difgsm": ({}, ten_steps),
            "rfgsm": ({"alpha": eps / 6}, {"alpha": eps / 2})}[method]


Row = tuple[str, str, str, str]  # lever, method, loss, substitute


def engine_attack(method: str, loss: str, eps: float, setting: dict[str, Any]) -> Attack:
    extra = {} if method == "fgsm" else {"loss": loss}
    attack: Attack = attack_class(method)(eps=eps, **extra, **setting)  # type: ignore[call-arg]
    return attack


def transfer(counter: QueryCounter, model: torch.nn.Module, eps: float, attack: Attack, x: np.ndarray, y: np.ndarray,
             clean: np.ndarray, seed: int, device: torch.device) -> TransferReport:
    """The attack crafted on `model`, labelled by the oracle beside its noise baseline (pipeline's sizes.py)."""
    reports, stop = transfer_at_sizes(counter, model, x, y, clean, ((eps, attack),), noise_baseline=True, seed=seed,
                                      device=device, evaluate=lambda c, xs, phase: (c.label(xs, phase), None))
    assert stop is None and reports
    return reports[0].report


@torch.no_grad()
def agreement(model: torch.nn.Module, x: np.ndarray, oracle_labels: np.ndarray, device: torch.device) -> float:
    labels = torch.cat([model(as_batch(x[i : i + 1000], device)).argmax(1).cpu() for i in range(0, len(x), 1000)])
    return float((labels.numpy() == oracle_labels).mean())


def splits(dataset: str, data_y: np.ndarray, s0: int, tune_start: int, tune_images: int, images: int,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Indices into the test set (labels `data_y`) of S0, the tuning split and the evaluation split (disjoint), and how
    they were drawn."""
    if dataset == "mnist":
        tune_start = tune_start or s0
        if not (0 < s0 <= tune_start and tune_start + tune_images <= 1000 and images <= 9000):
            raise typer.BadParameter("MNIST: S0 = test[0:s0] before the tuning split test[t:t+T], which ends by 1,000; "
                                     "--images at most 9,000 (the evaluation split is test[1000:1000+N])")
        return (np.arange(s0), np.arange(tune_start, tune_start + tune_images), np.arange(1000, 1000 + images),
                f"S0 = test[0:{s0}], tuning test[{tune_start}:{tune_start + tune_images}], evaluation "
                f"test[1000:{1000 + images}]")
    first = first_per_class(data_y, s0, int(data_y.max()) + 1)
    rest = np.random.default_rng(0).permutation(np.setdiff1d(np.arange(len(data_y)), first))
    if tune_images + images > len(rest):
        raise typer.BadParameter(f"{dataset}: --tune-images plus --images at most {len(rest):,}")
    return (first, np.sort(rest[:tune_images]), np.sort(rest[tune_images : tune_images + images]),
            f"S0 = the first {s0} test images of each class ({len(first)}), tuning and evaluation the first "
            f"{tune_images} and the next {images} of the others in a seeded shuffle")


def whitebox(oracle_name: str, oracle: InProcessOracle, sizes: tuple[float, ...], x: np.ndarray, y: np.ndarray,
             device: torch.device) -> None:
    """FGSM and PGD-40 crafted on the oracle's own model: what a white-box attacker leaves of its accuracy."""
    counter = QueryCounter(oracle)
    model, clean = frozen(load_oracle_model(oracle_name, device)[0]), counter.label(x, "agreement")
    for e in sizes:
        rates = {name: transfer(counter, model, e, engine_attack(method, "ce", e, setting), x, y, clean, 0, device)
                 for name, method, setting in (("FGSM", "fgsm", {}), ("PGD-40", "pgd", {"steps": 40}))}
        print(f"white-box on the oracle itself at ε = {e:g}: " + ", ".join(
            f"{name} {r.transfer_rate:.1%} misclassified" for name, r in rates.items())
            + f" (noise {rates['FGSM'].noise_rate:.1%}; clean accuracy {rates['FGSM'].clean_accuracy:.2%})", flush=True)


def rows_of_lever(methods: tuple[str, ...] = METHODS, levers: tuple[str, ...] = LEVERS) -> list[Row]:
    rows: list[Row] = [("method", m, "ce", "single") for m in methods]
    rows += [("loss", m, "margin", "single") for m in methods if m != "fgsm" and "loss" in levers]
    rows += [("ensemble", m, "ce", "ensemble") for m in methods if "ensemble" in levers]
    return rows


def mean_sd(values: list[float]) -> str:
    return f"{100 * np.mean(values):5.1f}" + (f" ± {100 * np.std(values, ddof=1):4.1f}" if len(values) > 1 else "")


def main(images: int = typer.Option(500, help="Evaluation images (MNIST: test[1000:1000+N], at most 9,000)"),
         tune_images: int = typer.Option(200, help="Tuning images (MNIST: test[t:t+T], t = --tune-start)"),
         tune_start: int = typer.Option(0, help="MNIST: where the tuning split starts (default right after S0)"),
         seeds: int = typer.Option(1, help="Substitutes per lever (seeds f..f+n-1), each tuned on its own"),
         first_seed: int = typer.Option(0, help="f: the first seed (to spread the seeds over processes)"),
         dataset: str = typer.Option("mnist", help="mnist or gtsrb"),
         eps: list[float] = typer.Option([], help="L∞ sizes (repeat; default MNIST 0.3, GTSRB 0.1 and 0.15)"),
         s0: int | None = typer.Option(None, help="S0: MNIST the first N test images (150), GTSRB the first N per class (10)"),
         rho: int | None = typer.Option(None, help="Substitute epochs ρ (default MNIST 6, GTSRB 4)"),
         lam: float = typer.Option(-0.1, help="λ, signed (engine/substitute.py)"),
         batch_size: int | None = typer.Option(None, help="Substitute training batch (default MNIST 128, GTSRB 32)"),
         train_epochs: int = typer.Option(10, help="Training epochs per substitute epoch"),
         members: list[str] = typer.Option([], help="The ensemble's presets, the lone substitute first (repeat; "
                                           "default MNIST papernot-mnist, lenet, mlp; GTSRB gtsrb-substitute × 3)"),
         augment_with: str = typer.Option("first", help="An ensemble: whose Jacobian chooses the points labelled "
                                          "next: first (the lone substitute's) or ensemble"),
         evaluate_on: str = typer.Option("evaluation", help="evaluation, or tuning: report every row on the tuning "
                                         "split, to choose substitute settings (λ, batch, S0, members) without "
                                         "looking at the evaluation images"),
         method: list[str] = typer.Option(list(METHODS), help="Crafting methods measured (repeat; default all)"),
         lever: list[str] = typer.Option(list(LEVERS), help="Levers measured besides the method "
                                         "(repeat): loss, ensemble (without it no ensemble is trained)"),
         adversarial_training: str = typer.Option("none", help="Train every substitute half on its own FGSM or PGD "
                                                  "examples at the largest ε (fgsm, pgd; none)"),
         white_box: bool = typer.Option(False, help="Also attack the oracle itself (its own gradient): FGSM and "
                                        "Madry et al.'s PGD-40, the yardstick of a defence's robustness"),
         oracle_name: str = typer.Option("", "--oracle", help="The oracle's model card (default the dataset's own; "
                                         "e.g. mnist-fgsm-adv)"),
         device: str = "auto") -> None:
    if dataset not in SETUPS:
        raise typer.BadParameter(f"--dataset: {', '.join(SETUPS)}")
    setup = SETUPS[dataset]
    presets = tuple(members) or setup.presets
    if evaluate_on not in ("evaluation", "tuning") or augment_with not in ("first", "ensemble"):
        raise typer.BadParameter("--evaluate-on: evaluation or tuning; --augment-with: first or ensemble")
    sizes = tuple(eps) or setup.eps
    s0, rho = setup.s0 if s0 is None else s0, setup.rho if rho is None else rho
    batch_size = setup.batch_size if batch_size is None else batch_size
    unknown = sorted(set(method) - set(METHODS)) + sorted(set(lever) - set(LEVERS))
    if unknown:
        raise typer.BadParameter(f"unknown method or lever: {', '.join(unknown)}")
    methods = tuple(m for m in METHODS if m in method)
    if adversarial_training not in ("none", "fgsm", "pgd"):
        raise typer.BadParameter("--adversarial-training: none, fgsm or pgd")
    adversarial = (None if adversarial_training == "none"
                   else TrainingAttack(adversarial_training, max(sizes)))  # type: ignore[arg-type]
    levers = tuple(lever)
    rows = rows_of_lever(methods, levers)
    dev = resolve_device(device)
    oracle_name = oracle_name or dataset
    oracle, card = label_oracle(oracle_name, dev)
    data = load_dataset(dataset, "test")
    s0_at, tune_at, eval_at, split_text = splits(dataset, data.y, s0, tune_start, tune_images, images)
    x0, x_tune, y_tune = data.x[s0_at], data.x[tune_at], data.y[tune_at]
    if evaluate_on == "tuning":
        eval_at, split_text = tune_at, split_text + " (rows reported on the tuning split)"
    x_eval, y_eval = data.x[eval_at], data.y[eval_at]
    with_ensemble = "ensemble" in levers
    print(f"oracle {oracle_name} ({card['architecture']}, test accuracy {card['test_accuracy']:.2%}); "
          f"ε = {', '.join(f'{e:g}' for e in sizes)} (L∞); {split_text}; ρ = {rho}, λ = {lam:g}, batch "
          f"{batch_size}, {train_epochs} training epochs; substitute {presets[0]}"
          + (f", ensemble {' + '.join(presets)} (same labels, augmented by the {augment_with})" if with_ensemble
             else "")
          + f"; methods {', '.join(methods)}; levers {', '.join(levers)}; adversarial training of the substitutes "
          f"{adversarial_training}; seeds {first_seed}..{first_seed + seeds - 1}; device {dev}, torch threads "
          f"{torch.get_num_threads()}", flush=True)
    if white_box:
        whitebox(oracle_name, oracle, sizes, x_eval, y_eval, dev)
    results: dict[tuple[Row, float], list[TransferReport]] = defaultdict(list)
    agreements: dict[str, list[float]] = defaultdict(list)
    chosen: dict[tuple[str, float], list[str]] = defaultdict(list)
    for seed in range(first_seed, first_seed + seeds):
        counter = QueryCounter(oracle)
        started = time.perf_counter()
        config = SubstituteConfig(preset=presets[0], substitute_epochs=rho, lam=lam, train_epochs=train_epochs,
                                  batch_size=batch_size, seed=seed,
                                  ensemble=presets[1:] if with_ensemble else (), adversarial=adversarial,
                                  augment_with=augment_with if with_ensemble else "first")  # type: ignore[arg-type]
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
        settings: dict[tuple[str, float], dict[str, Any]] = {}
        for e in sizes:
            for name in methods:
                options = grid(name, e)
                scores = [transfer(counter, models["single"], e, engine_attack(name, "ce", e, s), x_tune, y_tune,
                                   clean_tune, seed, dev).transfer_rate or 0.0 for s in options]
                settings[name, e] = options[int(np.argmax(scores))]
                chosen[name, e].append(str(settings[name, e] or "paper defaults"))
                print(f"  tuning {name} at ε = {e:g}: "
                      + ", ".join(f"{s or 'defaults'} {r:.1%}" for s, r in zip(options, scores, strict=True)),
                      flush=True)
            for row in rows:
                _, name, loss, substitute = row
                started = time.perf_counter()
                report = transfer(counter, models[substitute], e, engine_attack(name, loss, e, settings[name, e]),
                                  x_eval, y_eval, clean_eval, seed, dev)
                results[row, e].append(report)
                print(f"  ε = {e:<5g}{' '.join(row):32} transfer {report.transfer_rate:.1%}, noise "
                      f"{report.noise_rate:.1%} ({time.perf_counter() - started:.0f} s)", flush=True)
        print(f"  labelling queries {counter.used('labelling'):,}", flush=True)

    clean = results[rows[0], sizes[0]][0].clean_accuracy or 0.0
    print(f"\nTransfer over seeds {first_seed}..{first_seed + seeds - 1}, {images} evaluation images (mean ± sd, %); the "
          f"oracle's clean accuracy on them {clean:.2%}; agreement with the oracle: "
          + ", ".join(f"{'lone' if n == 'single' else n} {mean_sd(a).strip()}" for n, a in agreements.items())
          + "; settings chosen on the tuning split: "
          + "; ".join(f"{m} at {e:g} {', '.join(chosen[m, e])}" for e in sizes for m in methods))
    print(f"{'ε':5} {'lever':9} {'method':7} {'loss':6} {'substitute':10} {'transfer':>13} {'noise':>13} {'lift':>13} "
          f"{'clean acc':>9}")
    for e in sizes:
        for row in rows:
            reports = results[row, e]
            rates = [r.transfer_rate or 0.0 for r in reports]
            noise = [r.noise_rate or 0.0 for r in reports]
            print(f"{e:<5g} {row[0]:9} {row[1]:7} {row[2]:6} {row[3]:10} {mean_sd(rates):>13} {mean_sd(noise):>13} "
                  f"{mean_sd([a - b for a, b in zip(rates, noise, strict=True)]):>13} "
                  f"{100 * np.mean([r.clean_accuracy or 0.0 for r in reports]):9.1f}")


if __name__ == "__main__":
    typer.run(main)
