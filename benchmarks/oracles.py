"""Loading the trained oracles for the benchmarks: the model for white-box runs, and the label-only
`InProcessOracle` for black-box ones (the attack code only ever receives the latter)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("BBRANGE_MODEL_DIR", REPO / "models"))
if "BBRANGE_DATA_DIR" not in os.environ and (REPO.parent / "shared" / "datasets" / "mnist").is_dir():
    os.environ["BBRANGE_DATA_DIR"] = str(REPO.parent / "shared" / "datasets")

from bbrange.attacker.oracle_client import InProcessOracle  # noqa: E402
from bbrange.shared.architectures import build_model  # noqa: E402
from bbrange.shared.datasets import file_digest  # noqa: E402


def load_oracle_model(name: str, device: torch.device) -> tuple[nn.Module, dict]:
    """The model and its card (as a dict). Uses the oracle's model store; a card written before the
    store's current schema is still accepted here, after the same sha256 check of the weights."""
    card_file = MODEL_DIR / f"{name}.json"
    if not card_file.exists():
        sys.exit(f"{card_file} is missing: train it first, e.g. .venv/bin/bbrange oracle train --dataset "
                 f"{name.split('-')[0]}" + (f" --architecture {name.split('-', 1)[1]} --name {name}" if "-" in name else ""))
    try:
        from bbrange.oracle.model_store import load_model

        model, card = load_model(card_file, device)
        return model, card.model_dump()
    except Exception as e:  # noqa: BLE001 - schema drift only; the digest below is still enforced
        from safetensors.torch import load_file

        card = json.loads(card_file.read_text())
        weights = card_file.parent / Path(card["weights_file"]).name
        if file_digest(weights) != card["weights_sha256"]:
            raise RuntimeError(f"{weights} does not match its card") from e
        model = build_model(card["architecture"], tuple(card["input_shape"]), card["num_classes"])
        model.load_state_dict(load_file(str(weights)))
        return model.to(device).eval(), card


def frozen(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def label_oracle(name: str, device: torch.device) -> tuple[InProcessOracle, dict]:
    model, card = load_oracle_model(name, device)
    return InProcessOracle(frozen(model), tuple(card["input_shape"]), card["num_classes"], device), card
