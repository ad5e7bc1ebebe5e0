"""The whole black-box attack, once: the campaign service, the CLI and the benchmarks all call
`run_blackbox_attack`, so a figure means the same thing on every path.

    1. agreement   the oracle's labels of the evaluation images, before any perturbation
    2. substitute  Algorithm 1: label S_ρ, train the substitute, Jacobian augmentation (substitute.py)
    3. crafting    the attack (any `Attack` plug-in: it chooses its targets, crafts, and adds its own measures)
                   on the substitute, white-box, in batches
    4. evaluation  the oracle's labels of the adversarial examples, then (phase "baseline") of the same
                   images moved by random noise of the same size, the honest baseline of the transfer rate

A query attack (`needs_substitute = False`: decision-based, it asks the oracle itself) skips 2: after the
agreement labels it chooses its targets and searches (stage and query phase "attack"), every example confirmed
by the oracle as it goes, so the examples are not labelled again (no evaluation queries; the transfer rate is
the search's success rate); then the noise baseline and the attack's own measures (phase "baseline"). A budget
that runs out during the search keeps each image's best adversarial so far. An attack that trains the
substitute and then searches on the oracle (the hybrid: its search starts from the substitute's transferred
examples) returns the oracle's labels of its examples as a query attack does, and is measured the same way.

A budget that runs out during substitute training leaves the substitute trained on the points labelled
so far; the attack goes on with it (the budget-limited setting of the paper's Section 6), unless
`stop_when_training_stops` asks for no crafting then. A budget that runs out during evaluation keeps the
examples the oracle labelled. A budget refused for the agreement labels raises `BudgetExhausted`, since
nothing can be measured without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from bbrange.attacker.engine.attack import Attack, CraftedSet, CraftingContext, Measures
from bbrange.attacker.engine.errors import BudgetExhausted, EngineError
from bbrange.attacker.engine.evaluation import Distortion, TransferReport, distortion, success_of, summarise
from bbrange.attacker.engine.oracles import LabelOracle, QueryCounter
from bbrange.attacker.engine.registry import default_attack
from bbrange.attacker.engine.sizes import SizedReport, transfer_at_sizes
from bbrange.attacker.engine.substitute import EpochReport, SubstituteConfig, SubstituteResult, train_substitute
from bbrange.attacker.engine.vocabulary import QueryPhase

Stage = Literal["agreement", "substitute", "crafting", "attack", "evaluation"]
ProgressCallback = Callable[[Stage, float], None]
EVALUATION_BATCH = 1000


@dataclass(frozen=True)
class BlackBoxAttack:
    """Everything that decides the attack's outcome, besides the oracle and the images."""

    substitute: SubstituteConfig = field(default_factory=SubstituteConfig)
    crafting: Attack = field(default_factory=default_attack)
    stop_when_training_stops: bool = False  # no crafting with a substitute whose training the budget cut short
    # Random noise of the same size on the same images, labelled by the same oracle (its own query phase):
    # the baseline every transfer rate is read against.
    noise_baseline: bool = True


@dataclass
class BlackBoxResult:
    substitute: SubstituteResult | None  # None: a query attack, which trains none
    label_before: np.ndarray  # the oracle's labels of the clean evaluation images
    x_adv: np.ndarray  # every crafted example (empty when substitute training stopped early)
    targets: np.ndarray | None  # targeted attacks: the class each example was pushed to
    label_after: np.ndarray  # the oracle's labels of the first len(label_after) examples (query attacks: -1 where
    # the search kept only that the label was adversarial)
    x_noise: np.ndarray | None  # the noise baseline's inputs (as many as were labelled)
    label_noise: np.ndarray | None  # the oracle's labels of x_noise
    success: np.ndarray  # per labelled example (see `evaluation.success_of`)
    distortion: Distortion | None
    report: TransferReport | None
    completed: bool
    stop_reason: str | None = None
    measures: Measures | None = None  # the attack's own (`Attack.measures`), if it has any
    # An attack with a `size_sweep`: the headline's report first, then one per further size measured
    sizes: list[SizedReport] = field(default_factory=list)
    queries_per_image: np.ndarray | None = None  # a query attack: the queries each example cost


def run_blackbox_attack(
    oracle: LabelOracle | QueryCounter,
    x0: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    attack: BlackBoxAttack | None = None,
    *,
    device: torch.device | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> BlackBoxResult:
    """Train a substitute from S0 = `x0` through `oracle`'s labels, craft on `x_eval`, measure transfer.

    `oracle` may be any `LabelOracle` (wrapped in an unlimited `QueryCounter`) or a counter that
    carries a budget and watchers; `y_eval` (true labels) is never sent anywhere. `on_progress` is
    called with each stage and the fraction of it done; it may raise to stop the attack there.
    """
    attack = attack or BlackBoxAttack()
    if not attack.crafting.needs_substitute and type(attack.crafting).craft_set is Attack.craft_set:
        raise EngineError(f"{attack.crafting.name} is a query attack that does not override craft_set: it would "
                          "have no substitute to craft on")
    counter = oracle if isinstance(oracle, QueryCounter) else QueryCounter(oracle)
    device = device or torch.device("cpu")
    progress = on_progress or (lambda stage, fraction: None)
    x_eval = np.asarray(x_eval, dtype=np.float32)
    y_eval = np.asarray(y_eval, dtype=np.int64)

    progress("agreement", 0.0)
    label_before = counter.label(x_eval, "agreement")
    progress("agreement", 1.0)
    if not attack.crafting.needs_substitute:
        return _query_attack(counter, x_eval, y_eval, label_before, attack, device, progress)

    sub = train_substitute(counter, x0, attack.substitute, holdout=(x_eval, y_eval),
                           holdout_oracle_labels=label_before, device=device, on_epoch=on_epoch)
    if not sub.reports or (not sub.completed and attack.stop_when_training_stops):
        return BlackBoxResult(sub, label_before, np.zeros((0, *x_eval.shape[1:]), np.float32), None,
                              np.zeros(0, np.int64), None, None, np.zeros(0, bool), None, None, completed=False,
                              stop_reason=f"substitute training stopped: {sub.stop_reason}")

    model = sub.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    context = CraftingContext(model, counter, x_eval, label_before, counter.num_classes, attack.substitute.seed, device,
                              noise_baseline=attack.noise_baseline)
    targets = attack.crafting.choose_targets(context)
    stage: Stage = "attack" if attack.crafting.searches_oracle else "crafting"
    x_adv = attack.crafting.craft_set(context, targets, lambda fraction: progress(stage, fraction))
    if isinstance(x_adv, CraftedSet) and x_adv.labels is not None:
        # A search on the oracle started from the substitute (the hybrid): its examples are confirmed already.
        return _searched(counter, context, attack, targets, x_adv, y_eval, progress, sub)
    if isinstance(x_adv, CraftedSet):
        context, x_adv = replace(context, details=x_adv.details), x_adv.x_adv

    crafted = distortion(x_eval, x_adv)
    measures = attack.crafting.measures(context, x_adv, targets, crafted)
    label_after, stop_reason = _evaluate(counter, x_adv, "evaluation", progress)
    x_noise = label_noise = None
    if attack.noise_baseline and stop_reason is None:
        n = len(label_after)
        x_noise = attack.crafting.noise(x_eval[:n], x_adv[:n], np.random.default_rng(attack.substitute.seed))
        label_noise, stop_reason = _evaluate(counter, x_noise, "baseline", progress)
        x_noise = x_noise[: len(label_noise)]
    d = crafted.first(len(label_after))
    report = summarise(label_after, y_eval, clean_oracle_labels=label_before, targets=targets, distortions=d,
                       queries=len(label_after), noise_labels=label_noise)
    sizes: list[SizedReport] = []
    sweep = attack.crafting.size_sweep()
    if sweep:
        sizes.append(SizedReport(sweep[0][0], report))
        if stop_reason is None:
            more, stop_reason = transfer_at_sizes(
                counter, model, x_eval, y_eval, label_before, sweep[1:], noise_baseline=attack.noise_baseline,
                seed=attack.substitute.seed, device=device,
                evaluate=lambda c, x, phase: _evaluate(c, x, phase, progress))
            sizes += more
    if not sub.completed:
        stop_reason = f"substitute training stopped: {sub.stop_reason}" + (f"; {stop_reason}" if stop_reason else "")
    return BlackBoxResult(sub, label_before, x_adv, targets, label_after, x_noise, label_noise,
                          success_of(label_after, y_eval, targets), d, report, completed=stop_reason is None,
                          stop_reason=stop_reason, measures=measures, sizes=sizes)


def _query_attack(counter: QueryCounter, x_eval: np.ndarray, y_eval: np.ndarray, label_before: np.ndarray,
                  attack: BlackBoxAttack, device: torch.device, progress: ProgressCallback) -> BlackBoxResult:
    """A decision-based attack: no substitute; its examples and their labels come from its own search."""
    seed = attack.substitute.seed
    context = CraftingContext(None, counter, x_eval, label_before, counter.num_classes, seed, device,
                              noise_baseline=attack.noise_baseline)
    targets = attack.crafting.choose_targets(context)
    out = attack.crafting.craft_set(context, targets, lambda fraction: progress("attack", fraction))
    found = out if isinstance(out, CraftedSet) else CraftedSet(out)
    if found.labels is None:
        raise EngineError(f"{attack.crafting.name} needs no substitute, so its craft_set must return the oracle's "
                          "labels of its examples in a CraftedSet")
    return _searched(counter, context, attack, targets, found, y_eval, progress, None)


def _searched(counter: QueryCounter, context: CraftingContext, attack: BlackBoxAttack, targets: np.ndarray | None,
              found: CraftedSet, y_eval: np.ndarray, progress: ProgressCallback,
              sub: SubstituteResult | None) -> BlackBoxResult:
    """The examples of a search that asked the oracle itself (`found.labels` its answers): not labelled again;
    the noise baseline and the attack's own measures; `sub` the substitute it started from, if any."""
    assert found.labels is not None
    x_eval, label_before, seed = context.x, context.label_before, context.seed
    x_adv, label_after, stop_reason = found.x_adv, found.labels, found.stop_reason
    success = label_after != label_before if targets is None else label_after == targets
    x_noise = label_noise = None
    if attack.noise_baseline and stop_reason is None:
        x_noise = attack.crafting.noise(x_eval, x_adv, np.random.default_rng(seed))
        label_noise, stop_reason = _evaluate(counter, x_noise, "baseline", progress)
        x_noise = x_noise[: len(label_noise)]
    crafted = distortion(x_eval, x_adv)
    measures = attack.crafting.measures(replace(context, details=found.details), x_adv, targets, crafted)
    stop_reason = stop_reason or getattr(measures, "stop_reason", None)  # its own noise baseline ran out of budget
    report = summarise(label_after, y_eval, clean_oracle_labels=label_before, targets=targets, distortions=crafted,
                       noise_labels=label_noise)
    # The oracle's exact label of an untargeted example is not kept (-1): rates read from it are the search's.
    n = len(label_after)
    noise_rate = None if label_noise is None or not len(label_noise) else float(np.mean(
        label_noise != label_before[: len(label_noise)] if targets is None else label_noise == targets[: len(label_noise)]))
    rate = float(success.mean()) if n else None
    report = replace(report, transfer_rate=rate, misclassification_rate=None,
                     label_change_rate=rate if targets is None else report.label_change_rate,
                     transfer_rate_on_correct=None, noise_rate=noise_rate, noise_misclassification_rate=None,
                     lift_over_noise=None if rate is None or noise_rate is None else rate - noise_rate)
    if sub is not None and not sub.completed:
        stop_reason = f"substitute training stopped: {sub.stop_reason}" + (f"; {stop_reason}" if stop_reason else "")
    return BlackBoxResult(sub, label_before, x_adv, targets, label_after, x_noise, label_noise, success, crafted,
                          report, completed=stop_reason is None, stop_reason=stop_reason, measures=measures,
                          queries_per_image=found.queries)


def _evaluate(counter: QueryCounter, x: np.ndarray, phase: QueryPhase,
              progress: ProgressCallback) -> tuple[np.ndarray, str | None]:
    """The oracle's labels of x; on an exhausted budget, those it gave so far."""
    labels: list[np.ndarray] = []
    stop_reason = None
    what = "adversarial examples" if phase == "evaluation" else "noise baseline inputs"
    for start in range(0, len(x), EVALUATION_BATCH):
        try:
            labels.append(counter.label(x[start : start + EVALUATION_BATCH], phase))
        except BudgetExhausted as e:
            # Inputs of the refused call that the oracle did answer cannot be attributed to samples.
            got = sum(len(b) for b in labels)
            stop_reason = f"{e}; {got} of {len(x)} {what} were labelled and are kept"
            break
        progress("evaluation", (start + EVALUATION_BATCH) / len(x))
    return (np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)), stop_reason

