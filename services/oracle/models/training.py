"""Reproducible training of the oracle models, ending in safetensors weights and a model card."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from bbrange.oracle.models.adversarial_training import AdversarialTraining, adversarial_loss, train_static_models
from bbrange.shared.architectures import ARCHITECTURES, build_model
from bbrange.shared.datasets import Dataset, load_dataset
from bbrange.shared.devices import as_batch
from bbrange.shared.model_card import ModelCard, TrainingSettings, save_model
from bbrange.shared.perturbations import TrainingAttack


@dataclass(frozen=True)
class TrainingRecipe:
    dataset: str
    architecture: str
    epochs: int
    batch_size: int
    learning_rate: float
    max_shift: int  # random translation in pixels; 0 disables augmentation
    # "adam": Adam under a one-cycle schedule peaking at 3× the rate (minutes on a CPU); "sgd": plain
    # SGD at a constant rate, as the Theano tutorial the thesis trained its LeNet with.
    optimizer: Literal["adam", "sgd"] = "adam"
    adversarial: AdversarialTraining | None = None  # a defended oracle (adversarial_training.py)
    notes: str | None = None  # on the card: where the recipe departs from the paper it follows


RECIPES: dict[str, TrainingRecipe] = {
    "mnist": TrainingRecipe("mnist", "lenet", epochs=6, batch_size=128, learning_rate=1e-3, max_shift=0),
    # The JSMA thesis, Section 5.1: batches of 500, η = 0.1, 200 epochs (99.41% test accuracy there).
    # About 35 minutes on 2 CPU cores: for the white-box reproduction, not for `make demo`.
    "mnist-thesis": TrainingRecipe("mnist", "lenet", epochs=200, batch_size=500, learning_rate=0.1, max_shift=0,
                                   optimizer="sgd"),
    # Defended oracles (issue: compare defences under the same black-box attack).
    "mnist-fgsm-adv": TrainingRecipe("mnist", "lenet", epochs=6, batch_size=128, learning_rate=1e-3, max_shift=0,
                                     adversarial=AdversarialTraining(TrainingAttack(eps=0.3))),
    "mnist-ens-adv": TrainingRecipe("mnist", "lenet", epochs=6, batch_size=128, learning_rate=1e-3, max_shift=0,
                                    adversarial=AdversarialTraining(TrainingAttack(eps=0.3),
                                                                    static_architectures=("mlp", "papernot-mnist"))),
    # Madry et al.'s MNIST defence, scaled to train on 2 CPU cores in 20-30 minutes (~11 forward-backward
    # passes per batch: 10 PGD steps and the update).
    "mnist-pgd-adv": TrainingRecipe(
        "mnist", "lenet", epochs=10, batch_size=128, learning_rate=1e-3, max_shift=0,
        adversarial=AdversarialTraining(TrainingAttack("pgd", eps=0.3, steps=10, clean_weight=0.0)),
        notes="PGD adversarial training after Madry et al. (ICLR 2018), scaled down: ε = 0.3 and a random start as "
              "theirs, on adversarial examples only as theirs; but 10 PGD steps of 0.075 (theirs: 40 of 0.01), 10 "
              "epochs of batch 128 with Adam under a one-cycle schedule (theirs: 100,000 steps of batch 50, ~83 "
              "epochs, Adam 1e-4), and the project's tanh LeNet (theirs: conv 32, conv 64, fc 1024, ReLU)"),
    "gtsrb": TrainingRecipe("gtsrb", "gtsrb-cnn", epochs=10, batch_size=128, learning_rate=1e-3, max_shift=2),
}
QUICK_TRAIN_SAMPLES = 3000


def recipe_for(dataset: str, name: str | None = None) -> TrainingRecipe:
    """The named recipe (default: the dataset's own), which must be one for this dataset."""
    name = name or dataset
    if name not in RECIPES or RECIPES[name].dataset != dataset:
        known = [k for k, r in RECIPES.items() if r.dataset == dataset]
        raise ValueError(f"no training recipe {name!r} for {dataset}; known: {', '.join(known) or 'none'}")
    return RECIPES[name]
QUICK_TEST_SAMPLES = 1000


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to max_shift pixels (edge-padded), one offset per image."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * max_shift)
    shifted_rows = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, x.shape[1], h, w)
    return shifted_rows.gather(3, cols)


@torch.no_grad()
def predict_labels(model: nn.Module, x: np.ndarray | torch.Tensor, device: torch.device,
                   batch_size: int = 1000) -> np.ndarray:
    model.eval()
    xt = as_batch(x, torch.device("cpu"))
    out = [model(xt[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(xt), batch_size)]
    return torch.cat(out).numpy()


def accuracy(model: nn.Module, data: Dataset, device: torch.device) -> float:
    return float((predict_labels(model, data.x, device) == data.y).mean())


def _subset(data: Dataset, n: int, seed: int) -> Dataset:
    idx = np.sort(np.random.default_rng(seed).permutation(len(data))[:n])
    return Dataset(data.name, data.x[idx], data.y[idx], data.num_classes, data.class_names)


def train_oracle(
    dataset: str,
    model_dir: Path,
    *,
    name: str | None = None,
    architecture: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    quick: bool = False,
    device: torch.device = torch.device("cpu"),
    data_dir: str | Path | None = None,
    show_progress: bool = True,
    recipe: str | None = None,
) -> ModelCard:
    """Train an oracle on the dataset's training split and evaluate it on the test split.

    Quick mode trains one epoch on a few thousand images and evaluates on 1,000: for tests only.
    The seed fixes initial weights, data order and augmentation, so a rerun on the same machine writes
    the same weights.
    """
    recipe_name = recipe or dataset
    chosen = recipe_for(dataset, recipe_name)
    arch = architecture or chosen.architecture
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    n_epochs = epochs if epochs is not None else (1 if quick else chosen.epochs)
    train = load_dataset(dataset, "train", data_dir)
    test = load_dataset(dataset, "test", data_dir)
    if quick:
        train = _subset(train, QUICK_TRAIN_SAMPLES, seed)
        test = _subset(test, QUICK_TEST_SAMPLES, seed)

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(arch, train.input_shape, train.num_classes).to(device)
    steps_per_epoch = (len(train) + chosen.batch_size - 1) // chosen.batch_size
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None
    if chosen.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=chosen.learning_rate)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=chosen.learning_rate)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=chosen.learning_rate * 3, total_steps=n_epochs * steps_per_epoch
        )
    x_all = as_batch(train.x, torch.device("cpu"))
    y_all = torch.from_numpy(train.y)
    adv = chosen.adversarial
    static = [] if adv is None else train_static_models(adv, x_all, y_all, train.num_classes, chosen.batch_size,
                                                        generator, device)

    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, disable=not show_progress) as progress:
        task = progress.add_task(f"training {dataset}/{arch}", total=n_epochs * steps_per_epoch, status="")
        for epoch in range(n_epochs):
            model.train()
            order = torch.randperm(len(train), generator=generator)
            for step in range(steps_per_epoch):
                idx = order[step * chosen.batch_size : (step + 1) * chosen.batch_size]
                xb = random_shift(x_all[idx], chosen.max_shift, generator).to(device)
                yb = y_all[idx].to(device)
                if adv is None:
                    loss = nn.functional.cross_entropy(model(xb), yb)
                else:
                    loss = adversarial_loss(model, xb, yb, adv, static, step, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                progress.update(task, advance=1, status=f"epoch {epoch + 1}/{n_epochs} loss {loss.item():.3f}")
            if show_progress:  # a line per epoch too, for logs where the bar cannot redraw
                progress.console.log(f"{dataset}/{arch} epoch {epoch + 1}/{n_epochs} done, last loss {loss.item():.4f}")
        progress.update(task, status="evaluating on the test set")
        test_accuracy = accuracy(model, test, device)
        progress.update(task, status=f"test accuracy {test_accuracy:.2%}")
    wall = time.perf_counter() - started

    card = ModelCard(
        name=name or dataset,
        architecture=arch,
        architecture_layers=ARCHITECTURES[arch].layers,
        dataset=dataset,
        input_shape=train.input_shape,
        num_classes=train.num_classes,
        class_names=list(train.class_names),
        weights_file="",
        weights_sha256="",
        test_accuracy=test_accuracy,
        test_samples=len(test),
        training=TrainingSettings(
            epochs=n_epochs, batch_size=chosen.batch_size, learning_rate=chosen.learning_rate, seed=seed,
            quick=quick, train_samples=len(train), threads=torch.get_num_threads(),
            augmentation=(f"random shift up to {chosen.max_shift}px" if chosen.max_shift else "none") + (
                "" if adv is None else f"; adversarial training, {adv.describe()}"),
            recipe=recipe_name, optimizer=chosen.optimizer, notes=chosen.notes,
        ),
        wall_time_s=round(wall, 1),
        device=str(device),
        torch_version=torch.__version__,
    )
    return save_model(model.cpu(), card, model_dir)
