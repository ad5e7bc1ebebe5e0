"""Defended oracles: the adversarial training recipes train, say so on their card, and their FGSM and PGD
examples (bbrange.shared.adversarial's, which the attacker's substitutes take too) stay within ε of the clean
images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bbrange.oracle.models.training import RECIPES, train_oracle
from bbrange.shared.adversarial import training_examples
from bbrange.shared.architectures import build_model
from bbrange.shared.perturbations import TrainingAttack


def test_fgsm_examples_move_every_free_pixel_by_eps() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 3)
    x = torch.full((4, 1, 8, 8), 0.5)
    x_adv = training_examples(TrainingAttack(eps=0.1), model, x, torch.tensor([0, 1, 2, 0]), torch.Generator())
    assert torch.allclose((x_adv - x).abs(), torch.full_like(x, 0.1))


def test_pgd_examples_stay_in_the_ball_and_leave_the_model_s_mode() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 3).train()
    x = torch.rand(4, 1, 8, 8)
    attack = TrainingAttack("pgd", eps=0.1, steps=5)
    x_adv = training_examples(attack, model, x, torch.tensor([0, 1, 2, 0]), torch.Generator().manual_seed(0))
    assert model.training and attack.pgd_step == 0.05  # 2.5·ε/steps
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1


def test_ensemble_adversarial_recipe_trains_and_says_so(tmp_path: Path, data_dir: Path) -> None:
    card = train_oracle("mnist", tmp_path, name="ens", recipe="mnist-ens-adv", quick=True, data_dir=data_dir,
                        show_progress=False)
    assert card.training.recipe == "mnist-ens-adv"
    assert "adversarial training, FGSM ε=0.3 from itself, mlp, papernot-mnist" in card.training.augmentation
    assert card.test_accuracy > 0.5  # one quick epoch on 3,000 images, half of them adversarial


def test_pgd_adversarial_recipe_trains_and_its_card_says_how_it_differs(tmp_path: Path, data_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = RECIPES["mnist-pgd-adv"]
    assert recipe.adversarial is not None
    assert recipe.adversarial.describe() == "PGD ε=0.3, 10 steps of 0.075 from a random start, clean weight 0 from itself"
    # The recipe itself, with 2 PGD steps instead of 10 so that one quick epoch takes seconds.
    quick = replace(recipe.adversarial, attack=replace(recipe.adversarial.attack, steps=2))
    monkeypatch.setitem(RECIPES, "mnist-pgd-adv", replace(recipe, adversarial=quick))
    card = train_oracle("mnist", tmp_path, name="pgd", recipe="mnist-pgd-adv", quick=True, data_dir=data_dir,
                        show_progress=False)
    assert "adversarial training, PGD ε=0.3, 2 steps of 0.375 from a random start" in card.training.augmentation
    assert card.training.notes is not None and "Madry" in card.training.notes and "40 of 0.01" in card.training.notes
    assert card.test_accuracy > 0.2  # one quick epoch on 3,000 images, on adversarial examples only
