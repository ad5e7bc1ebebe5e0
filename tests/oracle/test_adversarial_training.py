"""Defended oracles: the adversarial training recipes train, say so on their card, and their FGSM examples
stay within ε of the clean images."""

from __future__ import annotations

from pathlib import Path

import torch

from bbrange.oracle.models.adversarial_training import fgsm_examples
from bbrange.oracle.models.training import train_oracle
from bbrange.shared.architectures import build_model


def test_fgsm_examples_move_every_free_pixel_by_eps() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 3)
    x = torch.full((4, 1, 8, 8), 0.5)
    x_adv = fgsm_examples(model, x, torch.tensor([0, 1, 2, 0]), 0.1)
    assert torch.allclose((x_adv - x).abs(), torch.full_like(x, 0.1))


def test_ensemble_adversarial_recipe_trains_and_says_so(tmp_path: Path, data_dir: Path) -> None:
    card = train_oracle("mnist", tmp_path, name="ens", recipe="mnist-ens-adv", quick=True, data_dir=data_dir,
                        show_progress=False)
    assert card.training.recipe == "mnist-ens-adv"
    assert "adversarial training, FGSM ε=0.3 from itself, mlp, papernot-mnist" in card.training.augmentation
    assert card.test_accuracy > 0.5  # one quick epoch on 3,000 images, half of them adversarial
