"""From a validated campaign spec to what the engine runs: S0, the evaluation images and the
`BlackBoxAttack`, checked against the target model before a single query is spent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bbrange.attacker.campaigns.errors import InvalidCampaign
from bbrange.attacker.campaigns.spec import CampaignSpec, DatasetInitialSet, FgsmCrafting
from bbrange.attacker.engine import (
    FGSM,
    JSMA,
    AfterQuery,
    Attack,
    BeforeQuery,
    BlackBoxAttack,
    CamouflagedCounter,
    LabelOracle,
    QueryCounter,
    SubstituteConfig,
)
from bbrange.shared.datasets import Dataset, load_dataset


@dataclass(frozen=True)
class CampaignInputs:
    x0: np.ndarray
    eval_index: np.ndarray  # indices of the evaluation images in their split
    x_eval: np.ndarray
    y_eval: np.ndarray
    class_names: list[str] | None


def engine_attack(spec: CampaignSpec) -> BlackBoxAttack:
    sub = spec.substitute
    config = SubstituteConfig(
        preset=sub.preset, substitute_epochs=sub.rho, lam=sub.lam, periodic_step=sub.periodic_step, tau=sub.tau,
        reservoir=sub.reservoir, sigma=sub.sigma, kappa=sub.kappa, train_epochs=sub.training.epochs,
        batch_size=sub.training.batch_size, learning_rate=sub.training.learning_rate, seed=spec.seed,
    )
    crafting: Attack
    if isinstance(spec.crafting, FgsmCrafting):
        crafting = FGSM(eps=spec.crafting.eps)
    else:
        c = spec.crafting
        crafting = JSMA(theta=c.theta, upsilon=c.upsilon, search_domain=c.search_domain, target=c.target,
                        target_class=c.target_class)
    # A campaign whose budget ran out while labelling is over: its record says so, with what it has.
    return BlackBoxAttack(substitute=config, crafting=crafting, stop_when_training_stops=True)


def campaign_inputs(spec: CampaignSpec, uploaded_s0: np.ndarray | None, input_shape: tuple[int, int, int],
                    num_classes: int) -> CampaignInputs:
    """The images of the campaign, refused with InvalidCampaign when they do not fit the target model."""
    s0 = spec.initial_set
    s0_range: tuple[str, int, int] | None = None
    if isinstance(s0, DatasetInitialSet):
        data = load_dataset(spec.dataset, s0.split)
        if s0.offset + s0.size > len(data):
            raise InvalidCampaign(f"the initial set asks for {spec.dataset} {s0.split} images {s0.offset}.."
                                  f"{s0.offset + s0.size - 1}, but that split has {len(data)} images")
        x0 = data.x[s0.offset : s0.offset + s0.size]
        s0_range = (s0.split, s0.offset, s0.offset + s0.size)
    elif uploaded_s0 is not None:
        x0 = uploaded_s0.astype(np.float32, copy=False)
    else:
        raise InvalidCampaign("the uploaded initial set is missing")
    eval_data = load_dataset(spec.dataset, spec.evaluation.split)
    index = _evaluation_indices(spec, len(eval_data), s0_range)
    _check_compatible(input_shape, num_classes, eval_data, x0, spec)
    names = list(eval_data.class_names) if eval_data.class_names else None
    return CampaignInputs(x0, index, eval_data.x[index], eval_data.y[index], names)


def query_counter(spec: CampaignSpec, oracle: LabelOracle, *, before: BeforeQuery, after: AfterQuery) -> QueryCounter:
    """The campaign's query counter: camouflaged among natural images of the dataset when the spec asks for it."""
    c = spec.camouflage
    if c.ratio == 0:
        return QueryCounter(oracle, spec.query_budget, before=before, after=after)
    data = load_dataset(spec.dataset, c.split)
    pool = np.arange(len(data))
    s0 = spec.initial_set
    if isinstance(s0, DatasetInitialSet) and s0.split == c.split:
        pool = pool[(pool < s0.offset) | (pool >= s0.offset + s0.size)]
    if spec.evaluation.split == c.split:
        pool = pool[pool >= spec.evaluation.size + (s0.size if isinstance(s0, DatasetInitialSet) else 0)]
    if len(pool) == 0:
        raise InvalidCampaign(f"no {spec.dataset} {c.split} images are left for the camouflage")
    return CamouflagedCounter(oracle, data.x[pool], c.ratio, spec.query_budget, seed=spec.seed, before=before,
                              after=after)


def epoch_weights(s0: int, rho: int, reservoir: bool, sigma: int, kappa: int) -> list[float]:
    """The size of each substitute epoch's training set: the work of an epoch grows with it."""
    sizes, size = [], s0
    for r in range(rho + 1):
        sizes.append(float(size))
        size += min(kappa, size) if reservoir and r >= sigma else size
    return sizes


def _evaluation_indices(spec: CampaignSpec, available: int, s0_range: tuple[str, int, int] | None) -> np.ndarray:
    candidates = np.arange(available)
    if s0_range is not None and s0_range[0] == spec.evaluation.split:
        candidates = candidates[(candidates < s0_range[1]) | (candidates >= s0_range[2])]
    if len(candidates) < spec.evaluation.size:
        raise InvalidCampaign(f"the evaluation asks for {spec.evaluation.size} {spec.dataset} {spec.evaluation.split} "
                              f"images outside the initial set, but only {len(candidates)} exist")
    return candidates[: spec.evaluation.size]


def _check_compatible(input_shape: tuple[int, int, int], num_classes: int, data: Dataset, x0: np.ndarray,
                      spec: CampaignSpec) -> None:
    if tuple(data.input_shape) != tuple(input_shape):
        raise InvalidCampaign(f"model {spec.target.model!r} takes inputs of shape {tuple(input_shape)}, but "
                              f"{spec.dataset} images have shape {tuple(data.input_shape)}")
    if data.num_classes != num_classes:
        raise InvalidCampaign(f"model {spec.target.model!r} has {num_classes} classes, {spec.dataset} has "
                              f"{data.num_classes}")
    if tuple(x0.shape[1:]) != tuple(input_shape):
        raise InvalidCampaign(f"the initial set has images of shape {tuple(x0.shape[1:])}; model "
                              f"{spec.target.model!r} takes {tuple(input_shape)}")
