"""The engine's torch-free face: the words and small facts a campaign spec is validated with, importable
without loading torch (the attacker API never loads it; tests/test_layout.py holds both).

The engine's own modules take these from here, so there is one definition of each.
"""

from __future__ import annotations

from typing import Literal, get_args

# The engine's words too (re-exported): the norms of a perturbation, the attacks a substitute may be trained against.
from bbrange.shared.perturbations import NORMS as NORMS
from bbrange.shared.perturbations import TRAINING_ATTACK_METHODS as TRAINING_ATTACK_METHODS
from bbrange.shared.perturbations import Norm as Norm
from bbrange.shared.perturbations import TrainingAttackMethod as TrainingAttackMethod

# Substitute architectures (presets.py describes each; it refuses to load if the two lists differ).
SubstitutePresetName = Literal["papernot-mnist", "lenet", "mlp", "gtsrb-substitute"]
SUBSTITUTE_PRESET_NAMES: tuple[SubstitutePresetName, ...] = get_args(SubstitutePresetName)

# λ, the Jacobian augmentation step, signed: negative steps towards the oracle's decision boundary (the
# authors' reference code); +0.1 is the paper as printed (substitute.py says why).
DEFAULT_STEP_SIZE = -0.1

# An ensemble of substitutes (Liu et al., ICLR 2017): at most this many presets, trained on the same labels; the
# Jacobian augmentation follows the first one, or the ensemble's averaged logits.
MAX_ENSEMBLE = 5
AugmentWith = Literal["first", "ensemble"]

# What a gradient crafting attack ascends: cross-entropy, or Carlini & Wagner's margin max_{j≠y} Z_j − Z_y.
CraftingLoss = Literal["ce", "margin"]
CRAFTING_LOSSES: tuple[CraftingLoss, ...] = get_args(CraftingLoss)

# labelling: S_ρ for the substitute; agreement: the clean evaluation images; attack: a query attack's own
# questions (initialisation, binary searches, gradient estimates); evaluation: the adversarial examples;
# baseline: the same images moved by random noise of the same size.
QueryPhase = Literal["labelling", "agreement", "attack", "evaluation", "baseline"]
QUERY_PHASES: tuple[QueryPhase, ...] = get_args(QueryPhase)

# How a targeted attack picks each image's target class (target_classes.py).
TargetChoice = Literal["random", "next", "least_likely", "fixed"]
TARGET_CHOICES: tuple[TargetChoice, ...] = get_args(TargetChoice)

# JSMA's search domain Γ at the start: every feature (the thesis) or the movable ones (cleverhans).
SearchDomain = Literal["all", "movable"]


def epoch_set_sizes(s0: int, rho: int, reservoir: bool, sigma: int, kappa: int) -> list[int]:
    """|S_ρ| of each substitute epoch 0..ρ: each epoch doubles the set, or adds κ points (at most as many as it
    has) from σ on with reservoir sampling."""
    sizes, size = [], s0
    for r in range(rho + 1):
        sizes.append(size)
        size += min(kappa, size) if reservoir and r >= sigma else size
    return sizes


# The attack a campaign or a pipeline runs when none is named: the black-box paper's FGSM.
DEFAULT_ATTACK = "fgsm"
