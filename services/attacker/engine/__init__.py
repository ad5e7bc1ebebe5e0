"""The black-box attack engine: a library, usable without the campaign service.

Papernot et al.'s attack against any label-only oracle: train a substitute on the oracle's labels with
Jacobian-based dataset augmentation, craft adversarial examples on it (FGSM, JSMA) and measure how many
the oracle misclassifies. It imports torch and numpy, never a web framework, Redis or a job queue.

    from bbrange.attacker.engine import CallableOracle, BlackBoxAttack, FGSM, run_blackbox_attack
    oracle = CallableOracle(my_api_labels, input_shape=(1, 28, 28), num_classes=10)
    result = run_blackbox_attack(oracle, x0, x_eval, y_eval, BlackBoxAttack(crafting=FGSM(eps=0.3)))
    print(result.report.transfer_rate, result.substitute.reports[-1].oracle_agreement)
"""

from bbrange.attacker.engine.attack import Attack
from bbrange.attacker.engine.augmentation import jacobian_augment, reservoir_sample
from bbrange.attacker.engine.camouflage import CamouflagedCounter
from bbrange.attacker.engine.errors import QUERY_PHASES, BudgetExhausted, EngineError, PartiallyAnswered, QueryPhase
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
from bbrange.attacker.engine.jsma import JSMA, JSMAResult, SearchDomain, jsma
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
from bbrange.attacker.engine.substitute import (
    DEFAULT_STEP_SIZE,
    EpochReport,
    SubstituteConfig,
    SubstituteResult,
    train_substitute,
)
from bbrange.attacker.engine.target_classes import TARGET_CHOICES, TargetChoice, choose_targets

__all__ = [
    # the pipeline
    "run_blackbox_attack", "BlackBoxAttack", "BlackBoxResult", "Stage",
    # oracles and query accounting
    "LabelOracle", "InProcessOracle", "CallableOracle", "QueryCounter", "QueryUsage", "QueryPhase", "QUERY_PHASES",
    "CamouflagedCounter", "BeforeQuery", "AfterQuery",
    # substitute training and augmentation
    "train_substitute", "SubstituteConfig", "SubstituteResult", "EpochReport", "DEFAULT_STEP_SIZE",
    "SUBSTITUTE_PRESETS", "SubstitutePreset", "get_preset", "jacobian_augment", "reservoir_sample",
    # crafting
    "Attack", "FGSM", "JSMA", "fgsm", "gradient_sign", "jsma", "JSMAResult", "SearchDomain",
    "choose_targets", "TargetChoice", "TARGET_CHOICES",
    # evaluation
    "transfer", "oracle_labels", "summarise", "success_of", "TransferReport", "distortion", "Distortion",
    "pair_matrices", "PairMatrices", "hardness", "adversarial_distance",
    # errors
    "EngineError", "BudgetExhausted", "PartiallyAnswered",
]
