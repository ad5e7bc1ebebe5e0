"""The black-box attack engine: a library, usable without the campaign service.

Papernot et al.'s attack against any label-only oracle: train a substitute (or an ensemble of them) on the
oracle's labels with Jacobian-based dataset augmentation, craft adversarial examples on it (any `Attack` plug-in:
FGSM, PGD, I-FGSM, MI-FGSM, DI-FGSM, R+FGSM, JSMA)
and measure how many the oracle misclassifies. It imports torch and numpy, never a web framework, Redis or
a job queue.

    from bbrange.attacker.engine import CallableOracle, BlackBoxAttack, FGSM, run_blackbox_attack
    oracle = CallableOracle(my_api_labels, input_shape=(1, 28, 28), num_classes=10)
    result = run_blackbox_attack(oracle, x0, x_eval, y_eval, BlackBoxAttack(crafting=FGSM(eps=0.3)))
    print(result.report.transfer_rate, result.substitute.reports[-1].oracle_agreement)

Importing this package loads no torch: its torch-free face (vocabulary.py: preset names, the step-size
default, set sizes per ρ, query phases; errors.py) is imported at once, everything else on first use
(PEP 562), so that the attacker API can validate a spec with the engine's own words.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bbrange.attacker.engine.errors import BudgetExhausted, EngineError, PartiallyAnswered
from bbrange.attacker.engine.vocabulary import (
    DEFAULT_STEP_SIZE,
    QUERY_PHASES,
    SUBSTITUTE_PRESET_NAMES,
    TARGET_CHOICES,
    QueryPhase,
    SearchDomain,
    SubstitutePresetName,
    TargetChoice,
    epoch_set_sizes,
)

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack, CraftingContext, Measures
    from bbrange.attacker.engine.augmentation import jacobian_augment, reservoir_sample
    from bbrange.attacker.engine.camouflage import CamouflagedCounter
    from bbrange.attacker.engine.ensemble import SubstituteEnsemble
    from bbrange.attacker.engine.evaluation import (
        Distortion,
        PairMatrices,
        TransferReport,
        adversarial_distance,
        distortion,
        hardness,
        oracle_labels,
        pair_matrices,
        success_of,
        summarise,
        transfer,
    )
    from bbrange.attacker.engine.fgsm import FGSM, fgsm, gradient_sign
    from bbrange.attacker.engine.jsma import JSMAResult, jsma
    from bbrange.attacker.engine.jsma_attack import JSMA, JsmaMeasures
    from bbrange.attacker.engine.oracles import (
        AfterQuery,
        BeforeQuery,
        CallableOracle,
        InProcessOracle,
        LabelOracle,
        QueryCounter,
        QueryUsage,
    )
    from bbrange.attacker.engine.pipeline import BlackBoxAttack, BlackBoxResult, Stage, run_blackbox_attack
    from bbrange.attacker.engine.presets import SUBSTITUTE_PRESETS, SubstitutePreset, get_preset
    from bbrange.attacker.engine.query_attacks.base import QueryAttack
    from bbrange.attacker.engine.query_attacks.budget import DecisionResult, PerImageQueries
    from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
    from bbrange.attacker.engine.query_attacks.hybrid import Hybrid
    from bbrange.attacker.engine.query_attacks.rays import RayS
    from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT
    from bbrange.attacker.engine.registry import ENGINE_ATTACKS, attack_class, register_engine_attack
    from bbrange.attacker.engine.substitute import EpochReport, SubstituteConfig, SubstituteResult, train_substitute
    from bbrange.attacker.engine.target_classes import choose_targets
    from bbrange.attacker.engine.transfer_attacks.difgsm import DIFGSM
    from bbrange.attacker.engine.transfer_attacks.iterative import GradientAttack
    from bbrange.attacker.engine.transfer_attacks.losses import loss_gradient
    from bbrange.attacker.engine.transfer_attacks.mifgsm import MIFGSM
    from bbrange.attacker.engine.transfer_attacks.pgd import IFGSM, PGD
    from bbrange.attacker.engine.transfer_attacks.rfgsm import RFGSM

# Each name loaded on first use, from the module that defines it.
_LAZY: dict[str, tuple[str, ...]] = {
    "pipeline": ("run_blackbox_attack", "BlackBoxAttack", "BlackBoxResult", "Stage"),
    "oracles": ("LabelOracle", "InProcessOracle", "CallableOracle", "QueryCounter", "QueryUsage", "BeforeQuery",
                "AfterQuery"),
    "camouflage": ("CamouflagedCounter",),
    "substitute": ("train_substitute", "SubstituteConfig", "SubstituteResult", "EpochReport"),
    "ensemble": ("SubstituteEnsemble",),
    "presets": ("SUBSTITUTE_PRESETS", "SubstitutePreset", "get_preset"),
    "augmentation": ("jacobian_augment", "reservoir_sample"),
    "attack": ("Attack", "CraftingContext", "Measures"),
    "registry": ("ENGINE_ATTACKS", "attack_class", "register_engine_attack"),
    "fgsm": ("FGSM", "fgsm", "gradient_sign"),
    "jsma": ("jsma", "JSMAResult"),
    "jsma_attack": ("JSMA", "JsmaMeasures"),
    "target_classes": ("choose_targets",),
    "transfer_attacks.iterative": ("GradientAttack",),
    "transfer_attacks.losses": ("loss_gradient",),
    "transfer_attacks.pgd": ("PGD", "IFGSM"),
    "transfer_attacks.mifgsm": ("MIFGSM",),
    "transfer_attacks.difgsm": ("DIFGSM",),
    "transfer_attacks.rfgsm": ("RFGSM",),
    "query_attacks.base": ("QueryAttack",),
    "query_attacks.budget": ("PerImageQueries", "DecisionResult"),
    "query_attacks.hopskipjump": ("HopSkipJump",),
    "query_attacks.sign_opt": ("SignOPT",),
    "query_attacks.rays": ("RayS",),
    "query_attacks.hybrid": ("Hybrid",),
    "evaluation": ("transfer", "oracle_labels", "summarise", "success_of", "TransferReport", "distortion",
                   "Distortion", "pair_matrices", "PairMatrices", "hardness", "adversarial_distance"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    # the pipeline
    "run_blackbox_attack", "BlackBoxAttack", "BlackBoxResult", "Stage",
    # oracles and query accounting
    "LabelOracle", "InProcessOracle", "CallableOracle", "QueryCounter", "QueryUsage", "QueryPhase", "QUERY_PHASES",
    "CamouflagedCounter", "BeforeQuery", "AfterQuery",
    # substitute training and augmentation
    "train_substitute", "SubstituteConfig", "SubstituteResult", "EpochReport", "DEFAULT_STEP_SIZE", "SubstituteEnsemble",
    "SUBSTITUTE_PRESETS", "SubstitutePreset", "SubstitutePresetName", "SUBSTITUTE_PRESET_NAMES", "get_preset",
    "epoch_set_sizes", "jacobian_augment", "reservoir_sample",
    # crafting: the plug-in base, the registry, the built-in attacks
    "Attack", "CraftingContext", "Measures", "ENGINE_ATTACKS", "attack_class", "register_engine_attack",
    "FGSM", "JSMA", "JsmaMeasures", "fgsm", "gradient_sign", "jsma", "JSMAResult", "SearchDomain",
    "choose_targets", "TargetChoice", "TARGET_CHOICES",
    # transfer attacks beyond FGSM: their base and loss, PGD, I-FGSM, MI-FGSM, DI-FGSM, R+FGSM
    "GradientAttack", "loss_gradient", "PGD", "IFGSM", "MIFGSM", "DIFGSM", "RFGSM",
    # decision-based attacks: their base, the one door to the oracle, the built-in ones
    "QueryAttack", "PerImageQueries", "DecisionResult", "HopSkipJump", "SignOPT", "RayS", "Hybrid",
    # evaluation
    "transfer", "oracle_labels", "summarise", "success_of", "TransferReport", "distortion", "Distortion",
    "pair_matrices", "PairMatrices", "hardness", "adversarial_distance",
    # errors
    "EngineError", "BudgetExhausted", "PartiallyAnswered",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _Engine(ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule fgsm or jsma binds it on this package, over the function of the same name
        # that the package exports: the function wins, as it did when it was imported here eagerly.
        if isinstance(value, ModuleType) and name in _MODULE_OF:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Engine
