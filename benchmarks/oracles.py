"""Loading the trained oracles for the benchmarks: the model for white-box runs, and the label-only
`InProcessOracle` for black-box ones (the attack code only ever receives the latter)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("BBRANGE_MODEL_DIR", REPO / "models"))
if "BBRANGE_DATA_DIR" not in os.environ and (REPO.parent / "shared" / "datasets" / "mnist").is_dir():
    os.environ["BBRANGE_DATA_DIR"] = str(REPO.parent / "shared" / "datasets")

from bbrange.attacker.engine import InProcessOracle  # noqa: E402
from bbrange.shared.model_card import WeightsRefused, load_model  # noqa: E402


def load_oracle_model(name: str, device: torch.device) -> tuple[nn.Module, dict]:
    """The model and its card (as a dict), through the oracle's model store and its checks."""
    card_file = MODEL_DIR / f"{name}.json"
    if not card_file.exists():
        how = {"mnist-mlp": "--dataset mnist --architecture mlp --name mnist-mlp",
               "mnist-thesis": "--dataset mnist --recipe mnist-thesis --name mnist-thesis",
               "mnist-fgsm-adv": "--dataset mnist --recipe mnist-fgsm-adv --name mnist-fgsm-adv",
               "mnist-ens-adv": "--dataset mnist --recipe mnist-ens-adv --name mnist-ens-adv",
               "mnist-pgd-adv": "--dataset mnist --recipe mnist-pgd-adv --name mnist-pgd-adv"}.get(name, f"--dataset {name}")
        sys.exit(f"{card_file} is missing: train it first: .venv/bin/bbrange oracle train {how}")
    try:
        model, card = load_model(card_file, device)
    except WeightsRefused as e:
        sys.exit(str(e))
    return model, card.model_dump()


def correctly_labelled(oracle: InProcessOracle, x: np.ndarray, y: np.ndarray, start: int, n: int,
                       candidates: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The first n images of x from `start` (among candidates·n) that the oracle labels as y, with its labels."""
    x, y = x[start : start + candidates * n], y[start : start + candidates * n]
    keep = np.flatnonzero(oracle.label(x) == y)[:n]
    return x[keep], y[keep]


def frozen(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def whitebox_fgsm_rate(name: str, x: np.ndarray, y: np.ndarray, eps: float, device: torch.device) -> float:
    """White-box FGSM on the oracle itself (its own gradient, true labels): the share it then misclassifies.

    Beside the transferred rate it shows gradient masking: single-step adversarial training resists its own
    FGSM far better than FGSM transferred from a substitute (Tramèr et al., 2018)."""
    model = frozen(load_oracle_model(name, device)[0])
    wrong = 0
    for i in range(0, len(x), 1000):
        xb = torch.from_numpy(np.ascontiguousarray(x[i : i + 1000])).to(device).requires_grad_(True)
        yb = torch.from_numpy(y[i : i + 1000]).to(device)
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(xb), yb), xb)
        with torch.no_grad():
            wrong += int((model((xb + eps * grad.sign()).clamp(0, 1)).argmax(1) != yb).sum())
    return wrong / len(x)


def label_oracle(name: str, device: torch.device) -> tuple[InProcessOracle, dict]:
    model, card = load_oracle_model(name, device)
    return InProcessOracle(frozen(model), tuple(card["input_shape"]), card["num_classes"], device), card
