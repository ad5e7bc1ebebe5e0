"""Substitute training with Jacobian-based dataset augmentation (Algorithm 1 of the black-box paper).

Epochs ρ = 0 .. ρ_max: label the points of S_ρ the oracle has not labelled yet, train the substitute
F on S_ρ, and (for ρ < ρ_max) augment S_{ρ+1} = S_ρ ∪ {clip(x + λ_ρ·sgn(J_F(x)[Õ(x)]))}. With ρ_max = 6
the last substitute is trained on |S0|·2^6 points, which is the paper's query arithmetic
(100·2^6 = 6,400).

λ is signed. The paper prints +λ, a step that makes the substitute surer of the oracle's label, away
from the decision boundary; its authors' reference code (the cleverhans black-box tutorial) steps by −λ
for the first τ epochs, towards the boundary, where the new points tell the substitute most about the
oracle. Against our MNIST oracles −0.1 gives a substitute that agrees with the oracle on ~95% of the
held-out images instead of ~82%, and roughly doubles FGSM transfer (benchmarks/ENGINE.md): it is the
default, and +0.1 is the paper as printed. Two refinements of the paper are options: periodic step size
λ_ρ = λ·(−1)^⌊ρ/τ⌋ and reservoir sampling (from ρ ≥ σ on, only κ points are augmented, so each later
epoch costs κ queries). The paper's Algorithm 3 draws those κ uniformly from the whole previous set
S_{ρ−1} (`reservoir_from="all"`, the default); drawing them from the newest points only ("newest") was
this project's first reading, kept for comparison.

At a tight budget the size of λ matters more than either refinement: against the LeNet oracle at 2,000
labels, λ = −0.3 (the attack's own ε) lifts FGSM transfer at ε = 0.3 from ~53% to ~70% with the same S0
and ρ, while the periodic step's sign flip to +λ costs ~14 points (benchmarks/budget_sweep.py).

Two options of our own: an ensemble of several presets trained on the same labels (ensemble.py; the epoch
reports measure the ensemble, which is what the attack crafts on), and adversarial training of each substitute
on the labelled set, half clean and half FGSM or PGD examples of itself (Goodfellow et al., 2015; the examples
are bbrange.shared.adversarial's, as the oracle's defended recipes).

Only labels come from the oracle, through a `QueryCounter`; nothing here reads the oracle's model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.augmentation import jacobian_augment, reservoir_sample
from bbrange.attacker.engine.ensemble import build_members, crafting_model
from bbrange.attacker.engine.errors import BudgetExhausted
from bbrange.attacker.engine.oracles import LabelOracle, QueryCounter
from bbrange.attacker.engine.presets import get_preset
from bbrange.attacker.engine.vocabulary import (
    DEFAULT_STEP_SIZE,  # λ; see the module docstring for the sign
    MAX_ENSEMBLE,
    AugmentWith,
)
from bbrange.shared.adversarial import adversarial_loss, training_examples
from bbrange.shared.devices import as_batch
from bbrange.shared.perturbations import TrainingAttack


@dataclass(frozen=True)
class SubstituteConfig:
    preset: str = "papernot-mnist"
    substitute_epochs: int = 6  # ρ_max: augmentations; the substitute is trained ρ_max + 1 times
    lam: float = DEFAULT_STEP_SIZE
    periodic_step: bool = False
    tau: int = 3
    reservoir: bool = False
    sigma: int = 3
    kappa: int = 400
    reservoir_from: Literal["all", "newest"] = "all"
    # Training per substitute epoch (the paper's cleverhans tutorial: 10 epochs, batch 128, Adam 1e-3).
    train_epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    augment_batch_size: int = 512
    query_budget: int | None = None  # labelling queries; agreement queries are counted apart
    seed: int = 0
    clip_min: float = 0.0
    clip_max: float = 1.0
    # Further presets trained beside `preset` on the same labels; the attack crafts on their averaged logits.
    ensemble: tuple[str, ...] = ()
    augment_with: AugmentWith = "first"  # whose Jacobian chooses the next points: the first member's, or the ensemble's
    adversarial: TrainingAttack | None = None  # train each substitute on clean and adversarial examples of itself

    def __post_init__(self) -> None:
        for name in self.presets:
            get_preset(name)
        if len(self.presets) > MAX_ENSEMBLE:
            raise ValueError(f"an ensemble of {len(self.presets)} substitutes; at most {MAX_ENSEMBLE}")
        if self.augment_with == "ensemble" and not self.ensemble:
            raise ValueError("augment_with='ensemble' needs an ensemble: name further presets in `ensemble`")

    @property
    def presets(self) -> tuple[str, ...]:
        """Every member's preset, the first (whose Jacobian augments by default) first."""
        return (self.preset, *self.ensemble)

    def step_size(self, rho: int) -> float:
        if self.periodic_step:
            return self.lam * (-1.0) ** (rho // self.tau)
        return self.lam


@dataclass(frozen=True)
class EpochReport:
    rho: int
    set_size: int  # |S_ρ| the substitute was trained on
    new_points_labelled: int
    labelling_queries: int  # cumulative
    agreement_queries: int  # cumulative, counted apart
    substitute_accuracy: float | None  # on the held-out images, against true labels
    oracle_agreement: float | None  # on the held-out images, against the oracle's labels
    step_size: float  # λ_ρ used for the augmentation after this epoch (0 when none followed)
    train_loss: float  # an ensemble: its members' mean
    wall_s: float
    budget_exhausted: bool = False


@dataclass
class SubstituteResult:
    model: nn.Module  # what the attack crafts on: the substitute, or the ensemble of them (ensemble.py)
    config: SubstituteConfig
    reports: list[EpochReport]
    x_train: np.ndarray  # the final S_ρ that was labelled
    y_train: np.ndarray  # the oracle's labels for it
    completed: bool  # all ρ_max + 1 epochs ran
    stop_reason: str | None = None
    holdout_oracle_labels: np.ndarray | None = field(default=None, repr=False)

    def summary(self) -> dict[str, object]:
        return {
            "completed": self.completed,
            "stop_reason": self.stop_reason,
            "epochs_run": len(self.reports),
            "final_set_size": len(self.y_train),
            "config": asdict(self.config),
            "reports": [asdict(r) for r in self.reports],
        }


ProgressCallback = Callable[[EpochReport], None]


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
           config: SubstituteConfig, generator: torch.Generator) -> float:
    model.train()
    last = float("nan")
    adversarial = config.adversarial
    for _ in range(config.train_epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        total, count = 0.0, 0
        for i in range(0, len(x), config.batch_size):
            idx = order[i : i + config.batch_size]
            if adversarial is None:
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            else:
                x_adv = training_examples(adversarial, model, x[idx], y[idx], generator)
                loss = adversarial_loss(adversarial, model, x[idx], y[idx], x_adv)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        last = total / max(count, 1)
    model.eval()
    return last


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def train_substitute(
    oracle: QueryCounter | LabelOracle,
    x0: np.ndarray,
    config: SubstituteConfig = SubstituteConfig(),
    *,
    holdout: tuple[np.ndarray, np.ndarray] | None = None,
    holdout_oracle_labels: np.ndarray | None = None,
    device: torch.device | None = None,
    on_epoch: ProgressCallback | None = None,
) -> SubstituteResult:
    """Algorithm 1. `holdout` = (images, true labels) for the per-epoch accuracy and agreement.

    The oracle's labels of the held-out images are queried once (phase "agreement") unless the caller
    already has them (`holdout_oracle_labels`); without them (budget refused) agreement is not reported.

    When the labelling budget (config.query_budget, or the counter's own budget) cannot cover the
    next points, only the first points that fit are labelled, the substitute is trained on them, and
    the run stops with `completed=False` and the reason: the budget is used exactly, never exceeded.
    """
    counter = oracle if isinstance(oracle, QueryCounter) else QueryCounter(oracle)
    device = device or torch.device("cpu")
    input_shape = tuple(counter.input_shape)
    x0 = np.asarray(x0, dtype=np.float32)
    if x0.ndim != 4 or tuple(x0.shape[1:]) != input_shape:
        raise ValueError(f"S0 must have shape (N, {', '.join(map(str, input_shape))}), got {x0.shape}")

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    members = build_members(config.presets, config.seed, input_shape, counter.num_classes, device)  # type: ignore[arg-type]
    # Each member its own optimizer and data order (the first's as a lone substitute's), on the same labels.
    optimizers = [torch.optim.Adam(m.parameters(), lr=config.learning_rate) for m in members]
    generators = [torch.Generator().manual_seed(config.seed + i) for i in range(len(members))]
    model = crafting_model(members)
    augmenter = members[0] if config.augment_with == "first" else model

    hold_x = hold_y = hold_oracle = None
    if holdout is not None:
        hold_x = as_batch(np.asarray(holdout[0], dtype=np.float32), device)
        hold_y = torch.as_tensor(holdout[1], dtype=torch.long, device=device)
        if holdout_oracle_labels is None:
            try:  # the oracle's labels of fixed images do not change: query them once
                holdout_oracle_labels = counter.label(holdout[0], "agreement")
            except BudgetExhausted:
                holdout_oracle_labels = None
        if holdout_oracle_labels is not None:
            hold_oracle = torch.as_tensor(holdout_oracle_labels, dtype=torch.long, device=device)

    x_set = as_batch(x0, device)
    y_set = torch.zeros(0, dtype=torch.long, device=device)
    previous_size = 0  # |S_{ρ-1}|: reservoir_from="newest" draws from S_ρ \ S_{ρ-1}
    reports: list[EpochReport] = []
    stop_reason: str | None = None

    for rho in range(config.substitute_epochs + 1):
        started = time.perf_counter()
        new = x_set[len(y_set):]
        budget_left = counter.remaining("labelling")
        if config.query_budget is not None:
            own = config.query_budget - counter.used("labelling")
            budget_left = own if budget_left is None else min(budget_left, own)
        exhausted = budget_left is not None and len(new) > budget_left
        if exhausted:
            wanted = len(new)
            new = new[: max(budget_left or 0, 0)]
            x_set = x_set[: len(y_set) + len(new)]
            stop_reason = f"query budget reached at ρ={rho}: {len(new)} of {wanted} new points labelled"
        if len(new) == 0 and exhausted:
            stop_reason = f"query budget reached before ρ={rho}"
            break
        try:
            labels = counter.label(new.cpu().numpy(), "labelling")
        except BudgetExhausted as e:
            stop_reason = f"query budget reached at ρ={rho}: {e}"
            x_set = x_set[: len(y_set)]
            break
        y_set = torch.cat([y_set, torch.from_numpy(labels).to(device)])
        loss = float(np.mean([_train(m, o, x_set, y_set, config, g)
                              for m, o, g in zip(members, optimizers, generators, strict=True)]))

        accuracy = agreement = None
        if hold_x is not None and hold_y is not None:
            pred = predict(model, hold_x)
            accuracy = float(torch.eq(pred, hold_y).float().mean())
            if hold_oracle is not None:
                agreement = float(torch.eq(pred, hold_oracle).float().mean())

        last = rho == config.substitute_epochs or exhausted
        lam = 0.0 if last else config.step_size(rho)
        report = EpochReport(
            rho=rho, set_size=len(y_set), new_points_labelled=len(new),
            labelling_queries=counter.used("labelling"), agreement_queries=counter.used("agreement"),
            substitute_accuracy=accuracy, oracle_agreement=agreement, step_size=lam, train_loss=loss,
            wall_s=round(time.perf_counter() - started, 3), budget_exhausted=exhausted,
        )
        reports.append(report)
        if on_epoch is not None:
            on_epoch(report)
        if last:
            break

        if config.reservoir and rho >= config.sigma:
            pool = np.arange(previous_size if config.reservoir_from == "newest" else 0, len(x_set))
            chosen = torch.from_numpy(pool[reservoir_sample(len(pool), config.kappa, rng)]).to(device)
        else:
            chosen = torch.arange(len(x_set), device=device)
        previous_size = len(x_set)
        augmented = jacobian_augment(augmenter, x_set[chosen], y_set[chosen], lam,
                                     batch_size=config.augment_batch_size,
                                     clip_min=config.clip_min, clip_max=config.clip_max)
        x_set = torch.cat([x_set, augmented])

    completed = stop_reason is None and len(reports) == config.substitute_epochs + 1
    return SubstituteResult(
        model=model.eval(), config=config, reports=reports,
        x_train=x_set[: len(y_set)].cpu().numpy(), y_train=y_set.cpu().numpy(),
        completed=completed, stop_reason=stop_reason,
        holdout_oracle_labels=None if hold_oracle is None else hold_oracle.cpu().numpy(),
    )
