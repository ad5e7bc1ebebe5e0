"""Loading the trained oracles for the benchmarks: the model for white-box runs, and the label-only
`InProcessOracle` for black-box ones (the attack code only ever receives the latter)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
               "mnist-thesis": "--dataset mnist --recipe mnist-thesis --name mnist-thesis"}.get(name, f"--dataset {name}")
        sys.exit(f"{card_file} is missing: train it first: .venv/bin/bbrange oracle train {how}")
    try:
        model, card = load_model(card_file, device)
    except WeightsRefused as e:
        sys.exit(str(e))
    return model, card.model_dump()


def frozen(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def label_oracle(name: str, device: torch.device) -> tuple[InProcessOracle, dict]:
    model, card = load_oracle_model(name, device)
    return InProcessOracle(frozen(model), tuple(card["input_shape"]), card["num_classes"], device), card
