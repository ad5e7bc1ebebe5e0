"""One campaign, start to finish, inside a worker: the engine's Algorithm 1 against the remote oracle,
crafting on the substitute, and the oracle's verdict on every adversarial example.

The runner owns the campaign record while it is running: it publishes phase, progress, per-epoch
metrics and queries by phase as they happen, honours cancellation before every oracle request and at
every substitute epoch, and always leaves the campaign in a final state with the reason, keeping
whatever it had computed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bbrange.attacker.campaign_models import (
    CampaignError, CampaignRecord, CampaignResults, CampaignState, EpochMetrics, Phase, QueryCounts, utcnow,
)
from bbrange.attacker.campaign_spec import CampaignSpec, DatasetInitialSet, FgsmCrafting, JsmaCrafting
from bbrange.attacker.campaign_store import CampaignStore, LeaseKeeper
from bbrange.attacker.evaluation import distortion
from bbrange.attacker.fgsm import fgsm
from bbrange.attacker.http_oracle import HttpLabelOracle, OracleError, OracleUnavailable
from bbrange.attacker.jsma import jsma
from bbrange.attacker.metrics import attack_metrics
from bbrange.attacker.oracle_client import BudgetExhausted, Phase as QueryPhase, QueryCounter
from bbrange.attacker.sample_images import grid_png
from bbrange.attacker.sample_store import SampleSet, SampleStore
from bbrange.attacker.settings import AttackerSettings
from bbrange.attacker.substitute import EpochReport, SubstituteConfig, train_substitute
from bbrange.attacker.target_policy import OracleAllowlist, TargetNotAllowed
from bbrange.shared.datasets import Dataset, load_dataset
from bbrange.shared.devices import as_batch, resolve_device

log = logging.getLogger(__name__)

EVALUATION_BATCH = 1000
CRAFT_BATCH = {"fgsm": 1000, "jsma": 100}
_PHASE_OF_QUERY = {"agreement": Phase.agreement, "labelling": Phase.substitute, "evaluation": Phase.evaluation}
# Share of the progress bar per phase; the substitute's share is split by the size of each epoch's set.
_SPAN = {Phase.connecting: (0.0, 0.02), Phase.agreement: (0.02, 0.07), Phase.substitute: (0.07, 0.82),
         Phase.crafting: (0.82, 0.87), Phase.evaluation: (0.87, 0.97), Phase.saving: (0.97, 1.0)}


class CampaignCancelled(Exception):
    pass


class CampaignLost(Exception):
    """The record left `running` under our feet (reaped as lost): stop without writing anything."""


class CampaignStopped(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CampaignQueryCounter(QueryCounter):
    """The engine's counter, plus: a cancellation check before every request, a report after it, and
    exact counts when a multi-request call stops half way (cancelled, refused, oracle gone): the oracle
    charged the part it answered, so the campaign counts it too."""

    def __init__(self, oracle: HttpLabelOracle, budget: int | None, *, before: Callable[[], None],
                 after: Callable[[QueryPhase, int], None]) -> None:
        super().__init__(oracle, budget)
        self._http = oracle
        self._before = before
        self._after = after

    def label(self, x: np.ndarray, phase: QueryPhase = "labelling") -> np.ndarray:
        self._before()
        answered_before = self._http.inputs_answered
        try:
            labels = super().label(x, phase)
        except BaseException as e:
            if partial := self._http.inputs_answered - answered_before:
                self.usage.by_phase[phase] += partial
                self._after(phase, partial)
            # Algorithm 1 stops gracefully on BudgetExhausted while labelling and keeps its substitute; the
            # engine would silently skip agreement labels instead, which the samples need: stop the campaign.
            if isinstance(e, BudgetExhausted) and phase != "labelling":
                raise CampaignStopped("budget_exhausted", f"{e} (during the {phase} phase)") from e
            raise
        self._after(phase, len(labels))
        return labels


@dataclass
class CampaignRunner:
    store: CampaignStore
    samples: SampleStore
    settings: AttackerSettings
    worker_name: str = ""

    def __post_init__(self) -> None:
        self.worker_name = self.worker_name or f"{socket.gethostname()}:{os.getpid()}"
        self.allowlist = OracleAllowlist(self.settings.oracle_allowlist)

    def run(self, cid: str) -> CampaignState | None:
        """Run a queued campaign to a final state; None when it was not queued (cancelled, unknown, taken)."""
        holder = f"{self.worker_name}/pid {os.getpid()}"
        if self.store.claim(cid, holder, self.settings.lease_ttl_s) is None:
            log.info("campaign %s is not queued any more; skipping", cid)
            return None
        started = time.perf_counter()
        with LeaseKeeper(self.store, cid, holder, self.settings.lease_ttl_s):
            state, results = _CampaignRun(self, cid).execute()
        metrics = attack_metrics()
        if state is not None:
            metrics.campaigns_finished.labels(state=state.value).inc()
            metrics.job_seconds.labels(state=state.value).observe(time.perf_counter() - started)
            if results is not None and results.oracle_agreement is not None and state is CampaignState.succeeded:
                metrics.substitute_agreement.observe(results.oracle_agreement)
        return state


class _CampaignRun:
    def __init__(self, runner: CampaignRunner, cid: str) -> None:
        self.runner = runner
        self.store = runner.store
        self.cid = cid
        self.settings = runner.settings
        self.results = CampaignResults()
        self.counter: CampaignQueryCounter | None = None
        self.oracle: HttpLabelOracle | None = None
        self.retries_reported = 0
        self.epoch_weights: list[float] = []

    # ------------------------------------------------------------------ record updates

    def _with_queries(self, mutate: Callable[[CampaignRecord], None]) -> Callable[[CampaignRecord], None]:
        def apply(r: CampaignRecord) -> None:
            mutate(r)
            if self.counter is not None:
                r.queries = QueryCounts(**self.counter.usage.by_phase, total=self.counter.total,
                                        inputs_sent=self.oracle.inputs_sent if self.oracle else 0)

        return apply

    def publish(self, mutate: Callable[[CampaignRecord], None]) -> CampaignRecord:
        record = self.store.update(self.cid, self._with_queries(mutate), only_from={CampaignState.running})
        if record is None:
            raise CampaignLost(self.cid)
        return record

    def enter(self, phase: Phase, fraction: float = 0.0) -> None:
        low, high = _SPAN.get(phase, (1.0, 1.0))

        def set_phase(r: CampaignRecord) -> None:
            r.phase = phase
            r.progress = round(max(r.progress, low + (high - low) * min(max(fraction, 0.0), 1.0)), 4)

        self.publish(set_phase)

    def check_cancel(self) -> None:
        if self.store.cancel_requested(self.cid):
            raise CampaignCancelled()

    def on_query(self, phase: QueryPhase, answered: int) -> None:
        metrics = attack_metrics()
        if answered:
            metrics.oracle_queries.labels(phase=phase).inc(answered)
        if self.oracle is not None and self.oracle.requests_retried > self.retries_reported:
            metrics.oracle_retries.inc(self.oracle.requests_retried - self.retries_reported)
            self.retries_reported = self.oracle.requests_retried
        if phase == "labelling":
            self.publish(lambda r: setattr(r, "phase", Phase.substitute))
        elif phase == "agreement":
            self.enter(Phase.agreement, 1.0)

    def finish(self, state: CampaignState, error: CampaignError | None, samples: bool = False) -> None:
        def final(r: CampaignRecord) -> None:
            r.state = state
            r.finished_at = utcnow()
            r.error = error
            r.results = self.results
            r.samples_available = samples
            if state is CampaignState.succeeded:
                r.phase, r.progress = Phase.done, 1.0

        if self.store.update(self.cid, self._with_queries(final), only_from={CampaignState.running},
                             finish=True) is None:
            raise CampaignLost(self.cid)

    # ------------------------------------------------------------------ the campaign

    def execute(self) -> tuple[CampaignState | None, CampaignResults | None]:
        record = self.store.get(self.cid)
        phase = record.phase.value if record else "?"
        try:
            state = self._attack()
            return state, self.results
        except CampaignLost:
            log.warning("campaign %s was finalised elsewhere (lease lost); dropping this run", self.cid)
            return None, None
        except CampaignCancelled:
            failure = (CampaignState.cancelled, CampaignError(code="cancelled", message="cancelled on request"))
        except CampaignStopped as e:
            failure = (CampaignState.failed, CampaignError(code=e.code, message=e.message))
        except TargetNotAllowed as e:
            failure = (CampaignState.failed, CampaignError(code="target_not_allowed", message=str(e)))
        except OracleError as e:
            failure = (CampaignState.failed, CampaignError(code="oracle_refused", message=e.message))
        except OracleUnavailable as e:
            failure = (CampaignState.failed, CampaignError(code="oracle_unavailable", message=str(e)))
        except _InvalidCampaign as e:
            failure = (CampaignState.failed, CampaignError(code="invalid_campaign", message=str(e)))
        except Exception as e:  # noqa: BLE001 - whatever it was, the campaign must not stay "running"
            log.exception("campaign %s failed", self.cid)
            failure = (CampaignState.failed,
                       CampaignError(code="internal_error", message=f"{type(e).__name__}: {e} (see the worker log)"))
        finally:
            if self.oracle is not None:
                self.oracle.close()
        state, error = failure
        current = self.store.get(self.cid)
        if current is not None:
            phase = current.phase.value
        error.message = f"{error.message} [phase: {phase}]"
        try:
            self.finish(state, error, samples=self.runner.samples.samples_path(self.cid).exists())
        except CampaignLost:
            return None, None
        return state, self.results

    def _attack(self) -> CampaignState:
        spec_json = self.store.secret_spec(self.cid)
        if spec_json is None:
            raise _InvalidCampaign("the campaign's stored spec is missing")
        spec = CampaignSpec.model_validate_json(spec_json)
        self.runner.allowlist.check(spec.target.oracle_url)
        device = resolve_device(self.settings.device)

        self.enter(Phase.connecting)
        self.oracle = HttpLabelOracle(
            spec.target.oracle_url, spec.target.model, spec.target.api_key.get_secret_value(),
            max_batch=self.settings.oracle_batch_size, timeout_s=self.settings.oracle_timeout_s,
            max_attempts=self.settings.oracle_max_attempts, max_wait_s=self.settings.oracle_max_wait_s,
            interrupt=self.check_cancel,
        )
        remote = self.oracle.describe()
        x0, s0_range = self._initial_set(spec)
        eval_data = load_dataset(spec.dataset, spec.evaluation.split)
        eval_idx = _evaluation_indices(spec, len(eval_data), s0_range)
        _check_compatible(remote.input_shape, remote.num_classes, eval_data, x0, spec)
        x_eval, y_eval = eval_data.x[eval_idx], eval_data.y[eval_idx]

        self.counter = CampaignQueryCounter(self.oracle, spec.query_budget, before=self.check_cancel,
                                            after=self.on_query)
        sub = spec.substitute
        config = SubstituteConfig(
            preset=sub.preset, substitute_epochs=sub.rho, lam=sub.lam, periodic_step=sub.periodic_step, tau=sub.tau,
            reservoir=sub.reservoir, sigma=sub.sigma, kappa=sub.kappa, train_epochs=sub.training.epochs,
            batch_size=sub.training.batch_size, learning_rate=sub.training.learning_rate, seed=spec.seed,
        )
        self.epoch_weights = _epoch_weights(len(x0), sub.rho, sub.reservoir, sub.sigma, sub.kappa)
        self.enter(Phase.agreement)
        result = train_substitute(self.counter, x0, config, holdout=(x_eval, y_eval), device=device,
                                  on_epoch=self.on_epoch)
        if result.reports:
            last = result.reports[-1]
            self.results.substitute_accuracy = last.substitute_accuracy
            self.results.oracle_agreement = last.oracle_agreement
        self.results.stop_reason = result.stop_reason
        if not result.completed:
            raise CampaignStopped("budget_exhausted", f"substitute training stopped: {result.stop_reason}")
        label_before = result.holdout_oracle_labels
        if label_before is None:  # the counter turns a refused agreement query into CampaignStopped
            raise _InvalidCampaign("the oracle's labels of the evaluation images are missing")

        self.enter(Phase.crafting)
        x_adv, targets = self._craft(spec, result.model, x_eval, label_before, device)

        self.enter(Phase.evaluation)
        label_after, stop = self._evaluate(x_adv)
        n = len(label_after)
        self.enter(Phase.saving)
        samples = _sample_set(spec, eval_idx[:n], x_eval[:n], x_adv[:n], y_eval[:n], label_before[:n], label_after,
                              targets[:n])
        self._summarise(spec, samples)
        if n:
            self.runner.samples.save(self.cid, samples)
            title = (f"campaign {self.cid[:8]} - {spec.crafting.method.upper()} on {spec.target.model}: "
                     f"transfer {self.results.transfer_rate:.1%} of {n}")
            self.runner.samples.save_grid(self.cid, grid_png(samples, title, eval_data.class_names
                                                             and list(eval_data.class_names)))
            if self.results.transfer_rate is not None:
                attack_metrics().transfer_rate.labels(method=spec.crafting.method).observe(self.results.transfer_rate)
        if stop is not None:
            raise stop
        self.finish(CampaignState.succeeded, None, samples=n > 0)
        return CampaignState.succeeded

    def on_epoch(self, report: EpochReport) -> None:
        done = sum(self.epoch_weights[: report.rho + 1]) / max(sum(self.epoch_weights), 1e-9)
        low, high = _SPAN[Phase.substitute]
        epoch = EpochMetrics(
            rho=report.rho, set_size=report.set_size, new_points_labelled=report.new_points_labelled,
            labelling_queries=report.labelling_queries, substitute_accuracy=report.substitute_accuracy,
            oracle_agreement=report.oracle_agreement, step_size=report.step_size, train_loss=report.train_loss,
            wall_s=report.wall_s,
        )

        def add(r: CampaignRecord) -> None:
            r.epochs.append(epoch)
            r.phase = Phase.substitute
            r.progress = round(max(r.progress, low + (high - low) * min(done, 1.0)), 4)

        self.publish(add)
        self.check_cancel()

    def _initial_set(self, spec: CampaignSpec) -> tuple[np.ndarray, tuple[str, int, int] | None]:
        s0 = spec.initial_set
        if isinstance(s0, DatasetInitialSet):
            data = load_dataset(spec.dataset, s0.split)
            if s0.offset + s0.size > len(data):
                raise _InvalidCampaign(f"the initial set asks for {spec.dataset} {s0.split} images {s0.offset}.."
                                       f"{s0.offset + s0.size - 1}, but that split has {len(data)} images")
            return data.x[s0.offset : s0.offset + s0.size], (s0.split, s0.offset, s0.offset + s0.size)
        return self.runner.samples.load_upload(self.cid).astype(np.float32, copy=False), None

    def _craft(self, spec: CampaignSpec, model: torch.nn.Module, x_eval: np.ndarray, label_before: np.ndarray,
               device: torch.device) -> tuple[np.ndarray, np.ndarray]:
        crafting = spec.crafting
        for p in model.parameters():
            p.requires_grad_(False)
        batch = CRAFT_BATCH[crafting.method]
        num_classes = self.counter.num_classes if self.counter else 0
        targets = np.full(len(x_eval), -1, dtype=np.int64)
        if isinstance(crafting, JsmaCrafting):
            targets = _jsma_targets(crafting, model, x_eval, label_before, num_classes, spec.seed, device)
        out = []
        for start in range(0, len(x_eval), batch):
            self.check_cancel()
            xb = as_batch(x_eval[start : start + batch], device)
            if isinstance(crafting, FgsmCrafting):
                adv = fgsm(model, xb, crafting.eps)
            else:
                tb = torch.from_numpy(targets[start : start + batch]).to(device)
                adv = jsma(model, xb, tb, theta=crafting.theta, max_distortion=crafting.upsilon,
                           search_domain=crafting.search_domain).x_adv
            out.append(adv.detach().cpu().numpy().astype(np.float32, copy=False))
            self.enter(Phase.crafting, (start + batch) / len(x_eval))
        return np.concatenate(out), targets

    def _evaluate(self, x_adv: np.ndarray) -> tuple[np.ndarray, CampaignStopped | None]:
        """The oracle's labels of the adversarial examples; on an exhausted budget, those it gave so far."""
        assert self.counter is not None
        labels: list[np.ndarray] = []
        for start in range(0, len(x_adv), EVALUATION_BATCH):
            try:
                labels.append(self.counter.label(x_adv[start : start + EVALUATION_BATCH], "evaluation"))
            except CampaignStopped as stop:
                # Inputs of the refused call that the oracle did answer cannot be attributed to samples.
                got = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
                return got, CampaignStopped(stop.code, f"{stop.message}; {len(got)} of {len(x_adv)} adversarial "
                                                        "examples were labelled and are kept")
            self.enter(Phase.evaluation, (start + EVALUATION_BATCH) / len(x_adv))
        return (np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)), None

    def _summarise(self, spec: CampaignSpec, s: SampleSet) -> None:
        r = self.results
        r.samples = len(s)
        if not len(s):
            return
        r.misclassification_rate = float((s.label_after != s.y_true).mean())
        r.label_change_rate = float((s.label_after != s.label_before).mean())
        if isinstance(spec.crafting, JsmaCrafting):
            r.target_rate = float((s.label_after == s.target).mean())
        r.transfer_rate = float(s.success.mean())
        r.mean_l0, r.mean_l2, r.mean_linf = float(s.l0.mean()), float(s.l2.mean()), float(s.linf.mean())


class _InvalidCampaign(ValueError):
    pass


def _evaluation_indices(spec: CampaignSpec, available: int, s0_range: tuple[str, int, int] | None) -> np.ndarray:
    candidates = np.arange(available)
    if s0_range is not None and s0_range[0] == spec.evaluation.split:
        candidates = candidates[(candidates < s0_range[1]) | (candidates >= s0_range[2])]
    if len(candidates) < spec.evaluation.size:
        raise _InvalidCampaign(f"the evaluation asks for {spec.evaluation.size} {spec.dataset} {spec.evaluation.split} "
                               f"images outside the initial set, but only {len(candidates)} exist")
    return candidates[: spec.evaluation.size]


def _check_compatible(input_shape: tuple[int, int, int], num_classes: int, data: Dataset, x0: np.ndarray,
                      spec: CampaignSpec) -> None:
    if tuple(data.input_shape) != tuple(input_shape):
        raise _InvalidCampaign(f"model {spec.target.model!r} takes inputs of shape {tuple(input_shape)}, but "
                               f"{spec.dataset} images have shape {tuple(data.input_shape)}")
    if data.num_classes != num_classes:
        raise _InvalidCampaign(f"model {spec.target.model!r} has {num_classes} classes, {spec.dataset} has "
                               f"{data.num_classes}")
    if tuple(x0.shape[1:]) != tuple(input_shape):
        raise _InvalidCampaign(f"the initial set has images of shape {tuple(x0.shape[1:])}; model "
                               f"{spec.target.model!r} takes {tuple(input_shape)}")


def _epoch_weights(s0: int, rho: int, reservoir: bool, sigma: int, kappa: int) -> list[float]:
    """The size of each substitute epoch's training set: the work of an epoch grows with it."""
    sizes, size = [], s0
    for r in range(rho + 1):
        sizes.append(float(size))
        size += min(kappa, size) if reservoir and r >= sigma else size
    return sizes


def _jsma_targets(crafting: JsmaCrafting, model: torch.nn.Module, x: np.ndarray, source: np.ndarray,
                  num_classes: int, seed: int, device: torch.device) -> np.ndarray:
    """Targets from what the attacker knows: the oracle's label of the clean image (and the substitute)."""
    if crafting.target == "fixed":
        if crafting.target_class is None or crafting.target_class >= num_classes:
            raise _InvalidCampaign(f"target_class must be below the model's {num_classes} classes")
        return np.full(len(x), crafting.target_class, dtype=np.int64)
    if crafting.target == "next":
        return ((source + 1) % num_classes).astype(np.int64)
    if crafting.target == "random":
        offset = np.random.default_rng(seed).integers(1, num_classes, size=len(x))
        return ((source + offset) % num_classes).astype(np.int64)
    with torch.no_grad():  # least likely class of the substitute
        logits = torch.cat([model(as_batch(x[i : i + 1000], device)).cpu() for i in range(0, len(x), 1000)])
    return logits.argmin(1).numpy().astype(np.int64)


def _sample_set(spec: CampaignSpec, index: np.ndarray, x: np.ndarray, x_adv: np.ndarray, y_true: np.ndarray,
                label_before: np.ndarray, label_after: np.ndarray, target: np.ndarray) -> SampleSet:
    d = distortion(x, x_adv)
    if isinstance(spec.crafting, JsmaCrafting):
        success = label_after == target
    else:
        success = label_after != y_true
    return SampleSet(
        index=index.astype(np.int64), x=x.astype(np.float32), x_adv=x_adv.astype(np.float32),
        y_true=y_true.astype(np.int64), label_before=label_before.astype(np.int64),
        label_after=label_after.astype(np.int64), target=target.astype(np.int64), success=success.astype(bool),
        l0=d.l0, l2=d.l2, linf=d.linf,
    )
