"""One campaign, start to finish, inside a worker: the engine's black-box pipeline against the remote
oracle, with the campaign record kept up to date.

The runner owns the campaign record while it is running: it publishes phase, progress, per-epoch
metrics and queries by phase as they happen, honours cancellation before every oracle request and at
every substitute epoch and crafting batch, and always leaves the campaign in a final state with the
reason, keeping whatever it had computed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from bbrange.attacker.campaigns import targets
from bbrange.attacker.campaigns.campaign_metrics import ClientReport, attack_metrics
from bbrange.attacker.campaigns.errors import BudgetSpent, CampaignCancelled, CampaignFailure, CampaignLost, InvalidCampaign
from bbrange.attacker.campaigns.report.pictures import grid_png
from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.spec.allowlist import OracleAllowlist
from bbrange.attacker.campaigns.storage.campaign_store import CampaignStore, LeaseKeeper
from bbrange.attacker.campaigns.storage.records import (
    CampaignError,
    CampaignPhase,
    CampaignRecord,
    CampaignResults,
    CampaignState,
    EpochMetrics,
    KeyUsage,
    QueryCounts,
    utcnow,
)
from bbrange.attacker.campaigns.storage.revocation import cancel_if_owner_revoked
from bbrange.attacker.campaigns.storage.samples import SampleStore
from bbrange.attacker.campaigns.storage.sealing import KeySealer, open_spec
from bbrange.attacker.campaigns.storage.users import UserStore
from bbrange.attacker.campaigns.worker import lifecycle
from bbrange.attacker.campaigns.worker.plan import campaign_inputs, engine_attack, epoch_weights, query_counter
from bbrange.attacker.campaigns.worker.results import campaign_results, sample_set
from bbrange.attacker.engine import EpochReport, QueryCounter, QueryPhase, Stage, run_blackbox_attack
from bbrange.attacker.engine.attack import FlagAwareMeasures
from bbrange.shared.devices import resolve_device

log = logging.getLogger(__name__)


@dataclass
class CampaignRunner:
    store: CampaignStore
    samples: SampleStore
    settings: AttackerSettings
    worker_name: str = ""

    def __post_init__(self) -> None:
        self.worker_name = self.worker_name or f"{socket.gethostname()}:{os.getpid()}"
        self.allowlist = OracleAllowlist(self.settings.oracle_allowlist)
        self.users = UserStore(self.store.redis, self.store.prefix)

    def run(self, cid: str) -> CampaignState | None:
        """Run a queued campaign to a final state; None when it was not queued (cancelled, unknown, taken)."""
        holder = f"{self.worker_name}/pid {os.getpid()}"
        if cancel_if_owner_revoked(self.store, self.users, self.samples, cid) is not None:
            attack_metrics().campaigns_finished.labels(state=CampaignState.cancelled.value).inc()
            return CampaignState.cancelled
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
        self.counter: QueryCounter | None = None
        self.oracle: targets.TargetClient | None = None
        self.client = ClientReport()
        self.epoch_weights: list[float] = []
        self.spans = lifecycle.SPANS
        self.attack_queries_at_flag: int | None = None  # the search's queries answered before the oracle's flag

    # ------------------------------------------------------------------ record updates

    def _with_queries(self, mutate: Callable[[CampaignRecord], None]) -> Callable[[CampaignRecord], None]:
        def apply(r: CampaignRecord) -> None:
            mutate(r)
            if self.counter is not None:
                r.queries = QueryCounts(**self.counter.usage.by_phase, total=self.counter.total,
                                        inputs_sent=self.oracle.inputs_sent if self.oracle else 0,
                                        batch_size=self.oracle.batch_size if self.oracle else None,
                                        keys=self._key_usage())

        return apply

    def _key_usage(self) -> list[KeyUsage] | None:
        if self.oracle is None or not self.oracle.keys.several:
            return None
        return [KeyUsage.model_validate(asdict(k)) for k in self.oracle.keys.usage]

    def publish(self, mutate: Callable[[CampaignRecord], None]) -> CampaignRecord:
        record = self.store.update(self.cid, self._with_queries(mutate), only_from={CampaignState.running})
        if record is None:
            raise CampaignLost(self.cid)
        return record

    def enter(self, phase: CampaignPhase, fraction: float = 0.0) -> None:
        """The record is `fraction` of the way through `phase`; its bar never moves back."""

        def set_phase(r: CampaignRecord) -> None:
            r.phase = phase
            r.progress = max(r.progress, lifecycle.progress(phase, fraction, self.spans))

        self.publish(set_phase)

    def check_cancel(self) -> None:
        if self.store.cancel_requested(self.cid):
            raise CampaignCancelled()

    def before_query(self, phase: QueryPhase, inputs: int) -> None:
        self.check_cancel()

    def on_query(self, phase: QueryPhase, answered: int) -> None:
        metrics = attack_metrics()
        if answered:
            metrics.oracle_queries.labels(phase=phase).inc(answered)
        if self.attack_queries_at_flag is None and self.oracle is not None and self.oracle.flag is not None \
                and self.counter is not None:
            # the flag came with this call's answer: its inputs are the first answered under it
            self.attack_queries_at_flag = self.counter.usage.by_phase["attack"] - (answered if phase == "attack" else 0)
        self._report_client()
        self.enter(lifecycle.phase_of_query(phase))

    def _report_client(self) -> None:
        if self.oracle is not None:
            self.client.report(self.oracle.requests_retried, self.oracle.paced_s)

    def finish(self, state: CampaignState, error: CampaignError | None, samples: bool = False) -> None:
        def final(r: CampaignRecord) -> None:
            r.state = state
            r.finished_at = utcnow()
            r.error = error
            r.results = self.results
            if self.oracle is not None and self.oracle.flag is not None:
                r.results.flagged, r.results.flagged_after_queries = self.oracle.flag, self.oracle.flagged_after
            r.samples_available = samples
            if state is CampaignState.succeeded:
                r.phase, r.progress = CampaignPhase.done, 1.0

        if self.store.update(self.cid, self._with_queries(final), only_from={CampaignState.running},
                             finish=True) is None:
            raise CampaignLost(self.cid)
        self.runner.samples.remove_upload(self.cid)

    # ------------------------------------------------------------------ the campaign

    def execute(self) -> tuple[CampaignState | None, CampaignResults | None]:
        record = self.store.get(self.cid)
        phase = record.phase.value if record else "?"
        try:
            with lifecycle.engine_failures():
                return self._attack(), self.results
        except CampaignLost:
            log.warning("campaign %s was finalised elsewhere (lease lost); dropping this run", self.cid)
            return None, None
        except CampaignFailure as e:
            state, error = e.state, e.record_error()
        except Exception as e:  # noqa: BLE001 - whatever it was, the campaign must not stay "running"
            log.exception("campaign %s failed", self.cid)
            state, error = CampaignState.failed, CampaignError(
                code="internal_error", message=f"{type(e).__name__}: {e} (see the worker log)")
        finally:
            self._report_client()
            if self.oracle is not None:
                self.oracle.close()
        if error.code == "budget_exhausted" and self.counter is not None:
            self.client.budget_stop(self.counter.usage.refused, self.counter.usage.refused_by_oracle)
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
            raise InvalidCampaign("the campaign's stored spec is missing")
        spec = open_spec(spec_json, KeySealer(self.settings.secret_key))
        self.runner.allowlist.check(spec.target.oracle_url)
        device = resolve_device(self.settings.device)

        self.enter(CampaignPhase.connecting)
        self.oracle = targets.connect(
            spec.target, timeout_s=self.settings.oracle_timeout_s, max_attempts=self.settings.oracle_max_attempts,
            max_wait_s=self.settings.oracle_max_wait_s, interrupt=self.check_cancel,
            user_agent=self.settings.oracle_user_agent,
        )
        self.oracle.batch_size = min(self.oracle.batch_size, self.settings.oracle_batch_size)
        remote = self.oracle.describe()
        described = {"name": remote.name, "input_shape": list(remote.input_shape), "num_classes": remote.num_classes,
                     **(remote.card or {})}
        self.publish(lambda r: setattr(r, "target_model", described))
        inputs = campaign_inputs(spec, self.runner.samples.load_uploads(self.cid), remote.input_shape,
                                 self.oracle.num_classes, self.settings.datasets_dir)

        self.counter = query_counter(spec, self.oracle, before=self.before_query, after=self.on_query)
        sub = spec.substitute
        self.epoch_weights = epoch_weights(len(inputs.x0), sub.rho, sub.reservoir, sub.sigma, sub.kappa)
        attack = engine_attack(spec)
        self.spans = lifecycle.spans_for(attack.crafting.needs_substitute, attack.crafting.searches_oracle)
        self.enter(CampaignPhase.agreement)
        result = run_blackbox_attack(self.counter, inputs.x0, inputs.x_eval, inputs.y_eval, attack,
                                     device=device, on_epoch=self.on_epoch, on_progress=self.on_stage)
        self.results = campaign_results(result, spec.crafting.method, spec.crafting.label())
        if isinstance(result.measures, FlagAwareMeasures) and self.attack_queries_at_flag is not None:
            self.results.distortion_after_bad_queries = result.measures.after_bad_queries(self.attack_queries_at_flag)
        if result.substitute is not None and not result.substitute.completed:
            raise BudgetSpent(result.stop_reason or "substitute training stopped")

        self.enter(CampaignPhase.saving)
        n = len(result.label_after)
        if n:
            samples = sample_set(inputs, result)
            self.runner.samples.save(self.cid, samples)
            title = (f"campaign {self.cid[:8]} - {spec.crafting.method.upper()} on {spec.target.model}: "
                     f"transfer {self.results.transfer_rate:.1%} of {n}")
            self.runner.samples.save_grid(self.cid, grid_png(samples, title, inputs.class_names))
            if self.results.transfer_rate is not None:
                attack_metrics().transfer_rate.labels(method=spec.crafting.method).observe(self.results.transfer_rate)
        if not result.completed:
            raise BudgetSpent(result.stop_reason or "the budget ran out during evaluation")
        self.finish(CampaignState.succeeded, None, samples=n > 0)
        return CampaignState.succeeded

    def on_stage(self, stage: Stage, fraction: float) -> None:
        self.check_cancel()
        self.enter(lifecycle.phase_of_stage(stage), fraction)

    def on_epoch(self, report: EpochReport) -> None:
        done = lifecycle.substitute_progress(self.epoch_weights, report.rho, self.spans)
        epoch = EpochMetrics.model_validate(asdict(report))

        def add(r: CampaignRecord) -> None:
            r.epochs.append(epoch)
            r.phase = CampaignPhase.substitute
            r.progress = max(r.progress, done)

        self.publish(add)
        self.check_cancel()
