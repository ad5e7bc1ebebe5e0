"""Model cards: safetensors weights beside a JSON card that vouches for them (hash, architecture, training)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import torch
from pydantic import BaseModel, Field
from safetensors.torch import load_file, save_file
from torch import nn

from bbrange.shared.architectures import ARCHITECTURES, build_model
from bbrange.shared.datasets import file_digest


class WeightsRefused(RuntimeError):
    """The weights on disk are not the ones the card describes."""


class TrainingSettings(BaseModel):
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    quick: bool
    train_samples: int
    augmentation: str
    threads: int | None = None  # absent in cards written before it was recorded
    recipe: str | None = None  # likewise
    optimizer: str | None = None


class ModelCard(BaseModel):
    name: str
    architecture: str
    architecture_layers: str
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: list[str]
    weights_file: str
    weights_sha256: str
    test_accuracy: float = Field(description="Top-1 accuracy on the test images below")
    test_samples: int
    training: TrainingSettings
    wall_time_s: float
    device: str
    torch_version: str
    created_at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())


def card_path(model_dir: Path, name: str) -> Path:
    return model_dir / f"{name}.json"


def save_model(model: nn.Module, card: ModelCard, model_dir: Path) -> ModelCard:
    """Write the weights, then the card with their hash; the card is written last so a reader never
    sees a card whose weights are still being written."""
    model_dir.mkdir(parents=True, exist_ok=True)
    weights = model_dir / f"{card.name}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # One metadata entry only: safetensors writes metadata from a hash map, so with several the header
    # (and the file's sha256) would vary from run to run.
    save_file(state, str(weights), metadata={"card": card.name})
    card = card.model_copy(update={"weights_file": weights.name, "weights_sha256": file_digest(weights)})
    card_path(model_dir, card.name).write_text(card.model_dump_json(indent=2) + "\n")
    return card


def read_card(path: Path) -> ModelCard:
    return ModelCard.model_validate(json.loads(path.read_text()))


def _outdated_architecture(card: ModelCard) -> str | None:
    """Why the card's network is not the one its architecture name builds today, or None.

    The weights of an earlier definition with the same parameter shapes (e.g. ReLU where tanh is now)
    would load without complaint and answer nonsense, so the card's layer list is the check."""
    if card.architecture not in ARCHITECTURES:
        return f"unknown architecture {card.architecture!r}"
    current = ARCHITECTURES[card.architecture].layers
    if card.architecture_layers != current:
        return (f"it was trained as {card.architecture!r} = [{card.architecture_layers}], which is now [{current}]; "
                f"train it again (bbrange oracle train --dataset {card.dataset})")
    return None


def load_model(card_file: Path, device: torch.device) -> tuple[nn.Module, ModelCard]:
    """Load a model in eval mode, refusing weights whose sha256 differs from the card's."""
    card = read_card(card_file)
    weights = card_file.parent / card.weights_file
    if Path(card.weights_file).name != card.weights_file:
        raise WeightsRefused(f"{card_file}: weights_file must be a plain file name, got {card.weights_file!r}")
    if (outdated := _outdated_architecture(card)) is not None:
        raise WeightsRefused(f"{card_file}: {outdated}")
    digest = file_digest(weights)
    if digest != card.weights_sha256:
        raise WeightsRefused(
            f"{weights}: sha256 {digest} does not match its card ({card.weights_sha256}); refusing to serve it"
        )
    model = build_model(card.architecture, card.input_shape, card.num_classes)
    model.load_state_dict(load_file(str(weights)), strict=True)
    return model.to(device).eval(), card


def unusable_reason(card_file: Path) -> str | None:
    """Why the model behind this card cannot be served (missing, unreadable, tampered, outdated), or None."""
    if not card_file.exists():
        return f"{card_file} does not exist"
    try:
        load_model(card_file, torch.device("cpu"))
    except (WeightsRefused, OSError, ValueError, RuntimeError) as e:  # pydantic's ValidationError is a ValueError
        return str(e)
    return None


def discover_cards(model_dir: Path) -> list[Path]:
    return sorted(model_dir.glob("*.json"))
