"""Model cards: weights beside a JSON card that vouches for them (hash, input, classes, accuracy, provenance).

Two formats: `safetensors` (a model this project trained from `shared/architectures.py`, run with torch) and
`onnx` (a model imported as an ONNX file, run with ONNX Runtime). Cards written before the format was
recorded are safetensors cards. Neither format can execute code when loaded: no pickle anywhere."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, model_validator
from safetensors.torch import load, save_file
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
    notes: str | None = None  # where the recipe departs from the paper it follows


class Preprocessing(BaseModel):
    """What a served model wants as input, from the wire's float32 (batch, C, H, W) in [0, 1]: values scaled
    linearly to `value_range`, channels reversed for `bgr`, then (x - mean) / std per channel, then laid out
    as `layout`. The default is the identity: what this project's own models take."""

    value_range: tuple[float, float] = (0.0, 1.0)
    channel_order: Literal["rgb", "bgr"] = "rgb"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: Literal["nchw", "nhwc"] = "nchw"

    @model_validator(mode="after")
    def _consistent(self) -> Preprocessing:
        low, high = self.value_range
        if not high > low:
            raise ValueError(f"value_range must rise: got {self.value_range}")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive: got {self.std}")
        return self

    @property
    def is_identity(self) -> bool:
        return self == Preprocessing()

    def check_channels(self, channels: int) -> None:
        """ValueError unless mean and std have one value, or one per channel."""
        for what, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) not in (1, channels):
                raise ValueError(f"{what} has {len(values)} values; the input has {channels} channel(s): "
                                 "give 1 or one per channel")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The model's input for a float32 (batch, C, H, W) batch in [0, 1]."""
        if self.is_identity:
            return x
        low, high = self.value_range
        out = x * np.float32(high - low) + np.float32(low) if (low, high) != (0.0, 1.0) else x
        if self.channel_order == "bgr":
            out = out[:, ::-1]
        per_channel = (1, -1, 1, 1)
        if self.mean is not None:
            out = out - np.asarray(self.mean, dtype=np.float32).reshape(per_channel)
        if self.std is not None:
            out = out / np.asarray(self.std, dtype=np.float32).reshape(per_channel)
        if self.layout == "nhwc":
            out = out.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(out, dtype=np.float32)


class OnnxGraph(BaseModel):
    """Where an imported ONNX model's input goes in and its class scores come out."""

    input_name: str
    output_name: str
    opset: int
    producer: str = ""
    fixed_batch: int | None = Field(None, description="The graph's batch size when it is not dynamic")


class ModelCard(BaseModel):
    name: str
    format: Literal["safetensors", "onnx"] = "safetensors"
    architecture: str = Field(description="An architecture of shared/architectures.py, or 'onnx' for an import")
    architecture_layers: str
    dataset: str = Field(description="mnist, gtsrb, or custom (an imported model with no test set here)")
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: list[str]
    weights_file: str
    weights_sha256: str
    test_accuracy: float | None = Field(description="Top-1 accuracy on the test images below (none: no test set)")
    test_samples: int
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    onnx: OnnxGraph | None = None
    training: TrainingSettings | None = Field(None, description="How it was trained (none for an imported model)")
    imported_from: str | None = Field(None, description="The file name an imported model was given as")
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


def verified_weights(card_file: Path) -> tuple[bytes, ModelCard]:
    """The weights file's bytes and its card, refusing bytes whose sha256 differs from the card's.

    The bytes checked are the bytes returned, so nothing can change the file between the check and the load."""
    card = read_card(card_file)
    if Path(card.weights_file).name != card.weights_file:
        raise WeightsRefused(f"{card_file}: weights_file must be a plain file name, got {card.weights_file!r}")
    if card.format == "safetensors" and (outdated := _outdated_architecture(card)) is not None:
        raise WeightsRefused(f"{card_file}: {outdated}")
    weights = card_file.parent / card.weights_file
    data = weights.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != card.weights_sha256:
        raise WeightsRefused(
            f"{weights}: sha256 {digest} does not match its card ({card.weights_sha256}); refusing to serve it"
        )
    return data, card


def load_model(card_file: Path, device: torch.device) -> tuple[nn.Module, ModelCard]:
    """Load a trained (safetensors) model in eval mode, refusing weights whose sha256 differs from the card's."""
    data, card = verified_weights(card_file)
    if card.format != "safetensors":
        raise WeightsRefused(f"{card_file}: {card.name} is an imported {card.format} model, not a torch module; "
                             "the oracle serves it with ONNX Runtime")
    model = build_model(card.architecture, card.input_shape, card.num_classes)
    model.load_state_dict(load(data), strict=True)
    return model.to(device).eval(), card


def unusable_reason(card_file: Path) -> str | None:
    """Why the model behind this card cannot be served (missing, unreadable, tampered, outdated), or None."""
    if not card_file.exists():
        return f"{card_file} does not exist"
    try:
        if read_card(card_file).format == "safetensors":
            load_model(card_file, torch.device("cpu"))
        else:
            verified_weights(card_file)
    except (WeightsRefused, OSError, ValueError, RuntimeError) as e:  # pydantic's ValidationError is a ValueError
        return str(e)
    return None


def discover_cards(model_dir: Path) -> list[Path]:
    return sorted(model_dir.glob("*.json"))
