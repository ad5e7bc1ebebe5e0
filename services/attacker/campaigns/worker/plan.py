"""From a validated campaign spec to what the engine runs: S0, the evaluation images and the
`BlackBoxAttack`, checked against the target model before a single query is spent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bbrange.attacker.campaigns.errors import InvalidCampaign
from bbrange.attacker.campaigns.spec.attacks.registry import registered
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.spec.data import DatasetInitialSet, FileImages, FileInitialSet, UploadedImages
from bbrange.attacker.campaigns.storage.user_data import Uploads, UserDataError, read_npz, to_unit, volume_file
from bbrange.attacker.engine import (
    AfterQuery,
    BeforeQuery,
    BlackBoxAttack,
    CamouflagedCounter,
    LabelOracle,
    QueryCounter,
    SubstituteConfig,
    epoch_set_sizes,
)
from bbrange.shared.datasets import load_dataset
from bbrange.shared.perturbations import TrainingAttack

_PRESET_CLASSES = {"mnist": 10, "gtsrb": 43}


@dataclass(frozen=True)
class CampaignInputs:
    x0: np.ndarray
    eval_index: np.ndarray  # indices of the evaluation images in their split
    x_eval: np.ndarray
    y_eval: np.ndarray
    class_names: list[str] | None


def engine_attack(spec: CampaignSpec) -> BlackBoxAttack:
    sub = spec.substitute
    first, *others = sub.members
    adv = sub.adversarial_training
    config = SubstituteConfig(
        preset=first, substitute_epochs=sub.rho, lam=sub.lam, periodic_step=sub.periodic_step, tau=sub.tau,
        reservoir=sub.reservoir, sigma=sub.sigma, kappa=sub.kappa, train_epochs=sub.training.epochs,
        batch_size=sub.training.batch_size, learning_rate=sub.training.learning_rate, seed=spec.seed,
        ensemble=tuple(others), augment_with=sub.augment_with,
        adversarial=None if adv is None else TrainingAttack(**adv.model_dump(exclude_none=True)),
    )
    crafting = registered(spec.crafting.method).engine_attack(spec.crafting)
    # A campaign whose budget ran out while labelling is over: its record says so, with what it has.
    return BlackBoxAttack(substitute=config, crafting=crafting, stop_when_training_stops=True,
                          noise_baseline=spec.evaluation.noise_baseline)


def campaign_inputs(spec: CampaignSpec, uploads: Uploads, input_shape: tuple[int, int, int],
                    num_classes: int, datasets_dir: Path | None = None) -> CampaignInputs:
    """The images of the campaign (`uploads`: what the API kept of the spec's uploads), refused with
    InvalidCampaign when they do not fit the target model."""
    try:
        x0, s0_range = _initial_set(spec, uploads.x0, datasets_dir)
        x_all, y_all, names = _evaluation_images(spec, uploads, datasets_dir)
    except UserDataError as e:
        raise InvalidCampaign(str(e)) from None
    # S0 drawn from the evaluation split is kept out of the evaluation images.
    index = _evaluation_indices(spec, len(x_all), s0_range if spec.evaluation.source is None else None)
    _check_compatible(input_shape, num_classes, x_all, names, x0, spec)
    return CampaignInputs(x0, index, x_all[index], y_all[index], names)


def _initial_set(spec: CampaignSpec, uploaded: np.ndarray | None,
                 datasets_dir: Path | None) -> tuple[np.ndarray, tuple[str, int, int] | None]:
    s0 = spec.initial_set
    if isinstance(s0, DatasetInitialSet):
        if spec.dataset == "custom":
            raise InvalidCampaign("dataset custom has no images of its own: upload S0 or name a file for it")
        data = load_dataset(spec.dataset, s0.split)
        if s0.offset + s0.size > len(data):
            raise InvalidCampaign(f"the initial set asks for {spec.dataset} {s0.split} images {s0.offset}.."
                                  f"{s0.offset + s0.size - 1}, but that split has {len(data)} images")
        return data.x[s0.offset : s0.offset + s0.size], (s0.split, s0.offset, s0.offset + s0.size)
    if isinstance(s0, FileInitialSet):
        x, _ = read_npz(volume_file(datasets_dir, s0.name), s0.name, spec.value_range, labelled=False)
        if s0.offset + s0.size > len(x):
            raise InvalidCampaign(f"the initial set asks for images {s0.offset}..{s0.offset + s0.size - 1} of "
                                  f"{s0.name}, which has {len(x)}")
        return x[s0.offset : s0.offset + s0.size], None
    if uploaded is None:
        raise InvalidCampaign("the uploaded initial set is missing")
    return to_unit(uploaded, spec.value_range, "the uploaded initial set"), None


def _evaluation_images(spec: CampaignSpec, uploads: Uploads,
                       datasets_dir: Path | None) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    source = spec.evaluation.source
    names = spec.domain.class_names if spec.domain is not None else None
    if isinstance(source, UploadedImages):
        if uploads.x_eval is None or uploads.y_eval is None:
            raise InvalidCampaign("the uploaded evaluation set is missing")
        return to_unit(uploads.x_eval, spec.value_range, "the uploaded evaluation set"), uploads.y_eval, names
    if isinstance(source, FileImages):
        x, labels = read_npz(volume_file(datasets_dir, source.name), source.name, spec.value_range, labelled=True)
        assert labels is not None
        return x, labels, names
    if spec.dataset == "custom":
        raise InvalidCampaign("dataset custom needs evaluation.source")
    data = load_dataset(spec.dataset, spec.evaluation.split)
    return data.x, data.y, list(data.class_names) if data.class_names else None


def query_counter(spec: CampaignSpec, oracle: LabelOracle, *, before: BeforeQuery, after: AfterQuery) -> QueryCounter:
    """The campaign's query counter: camouflaged among natural images of the dataset when the spec asks for it."""
    c = spec.camouflage
    if c.ratio == 0:
        return QueryCounter(oracle, spec.query_budget, before=before, after=after)
    if spec.dataset == "custom":
        raise InvalidCampaign("the camouflage draws natural images from a dataset preset (mnist, gtsrb)")
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
    return [float(n) for n in epoch_set_sizes(s0, rho, reservoir, sigma, kappa)]


def _evaluation_indices(spec: CampaignSpec, available: int, s0_range: tuple[str, int, int] | None) -> np.ndarray:
    candidates = np.arange(available)
    if s0_range is not None and s0_range[0] == spec.evaluation.split:
        candidates = candidates[(candidates < s0_range[1]) | (candidates >= s0_range[2])]
    if len(candidates) < spec.evaluation.size:
        raise InvalidCampaign(f"the evaluation asks for {spec.evaluation.size} {spec.dataset} {spec.evaluation.split} "
                              f"images outside the initial set, but only {len(candidates)} exist")
    return candidates[: spec.evaluation.size]


def _check_compatible(input_shape: tuple[int, int, int], num_classes: int, x_eval: np.ndarray,
                      names: list[str] | None, x0: np.ndarray, spec: CampaignSpec) -> None:
    classes = spec.domain.num_classes if spec.domain is not None else _PRESET_CLASSES[spec.dataset]
    if tuple(x_eval.shape[1:]) != tuple(input_shape):
        raise InvalidCampaign(f"model {spec.target.model!r} takes inputs of shape {tuple(input_shape)}, but "
                              f"the evaluation images have shape {tuple(x_eval.shape[1:])}")
    if spec.target.class_map is not None and num_classes > classes:
        raise InvalidCampaign(f"class_map maps model {spec.target.model!r}'s labels to {num_classes} classes, "
                              f"the {spec.dataset} domain has {classes}")
    if spec.target.class_map is None and classes != num_classes:
        raise InvalidCampaign(f"model {spec.target.model!r} has {num_classes} classes, the {spec.dataset} domain has "
                              f"{classes}; give target.class_map if its labels are not the dataset's")
    if tuple(x0.shape[1:]) != tuple(input_shape):
        raise InvalidCampaign(f"the initial set has images of shape {tuple(x0.shape[1:])}; model "
                              f"{spec.target.model!r} takes {tuple(input_shape)}")
