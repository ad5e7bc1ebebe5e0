"""Prometheus metrics of the attacker service.

Campaigns run in RQ work horses (one forked process per campaign), so counters and histograms are kept
with prometheus-client's multiprocess mode: every process writes to files in a shared directory and
whoever serves /metrics (the API, or a worker's own endpoint) aggregates them. Campaigns by state are
read from Redis at scrape time, which is exact whatever process changed them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from bbrange.attacker.campaigns.spec.attacks.registry import load_attacks
from bbrange.attacker.campaigns.storage.campaign_store import CampaignStore

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
RATE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def enable_multiprocess(directory: Path | None) -> Path:
    """Switch this process (and the work horses it forks) to multiprocess metrics in `directory`
    (a fresh temporary one if None). Must run before any metric is created."""
    path = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="bbrange-attack-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus-client picks its value class at import time; metrics created from now on use files.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    return path


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


class AttackMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # In multiprocess mode the values live in files; the registry only matters in single-process mode.
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.oracle_queries = Counter(
            "bbrange_attack_oracle_queries", "Inputs the oracle labelled for campaigns, by campaign phase",
            ["phase"], registry=r,
        )
        self.oracle_retries = Counter(
            "bbrange_attack_oracle_retries", "Oracle requests retried after a transient failure or a rate limit",
            registry=r,
        )
        self.client_paced_seconds = Counter(
            "bbrange_attack_client_paced_seconds", "Seconds campaigns waited to keep their own pace "
            "(target.max_queries_per_second), whatever the endpoint allows", registry=r,
        )
        self.budget_stops = Counter(
            "bbrange_attack_budget_stops", "Campaigns stopped because a budget ran out, by whose budget (the campaign's "
            "own query_budget, kept client-side, or the oracle's for the key) and the phase it ran out in",
            ["budget", "phase"], registry=r,
        )
        self.campaigns_finished = Counter(
            "bbrange_attack_campaigns_finished", "Campaigns that reached a final state in a worker", ["state"],
            registry=r,
        )
        self.substitute_agreement = Histogram(
            "bbrange_attack_substitute_agreement", "Oracle agreement of the final substitute of finished campaigns",
            buckets=RATE_BUCKETS, registry=r,
        )
        self.transfer_rate = Histogram(
            "bbrange_attack_transfer_rate", "Transfer rate of finished campaigns' adversarial examples",
            ["method"], buckets=RATE_BUCKETS, registry=r,
        )
        self.job_seconds = Histogram(
            "bbrange_attack_job_seconds", "Wall time of campaign jobs in the workers, by final state", ["state"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400), registry=r,
        )

    def show_zeros(self) -> None:
        """Create every labelled series up front, so dashboards see zeros rather than gaps."""
        for phase in ("labelling", "agreement", "attack", "evaluation"):
            self.oracle_queries.labels(phase=phase)
            for budget in ("campaign", "oracle"):
                self.budget_stops.labels(budget=budget, phase=phase)
        for state in ("succeeded", "failed", "cancelled"):
            self.campaigns_finished.labels(state=state)
            self.job_seconds.labels(state=state)
        for method in load_attacks():  # the built-in attacks and the plug-ins
            self.transfer_rate.labels(method=method)


_metrics: AttackMetrics | None = None


@dataclass
class ClientReport:
    """A campaign's client-side counts (retries, time spent pacing), reported to the counters as they grow:
    each call adds what was added since the last one."""

    retried: int = 0
    paced_s: float = 0.0

    def report(self, retried: int, paced_s: float) -> None:
        m = attack_metrics()
        if retried > self.retried:
            m.oracle_retries.inc(retried - self.retried)
        if paced_s > self.paced_s:
            m.client_paced_seconds.inc(paced_s - self.paced_s)
        self.retried, self.paced_s = retried, paced_s

    @staticmethod
    def budget_stop(refused: Mapping[Any, int], refused_by_oracle: Mapping[Any, int]) -> None:
        """A campaign stopped for want of budget: the oracle's when the oracle refused a request, else the
        campaign's own (which the engine keeps without sending what would not fit, or refuses before sending)."""
        by_oracle = [phase for phase, n in refused_by_oracle.items() if n]
        own = [phase for phase, n in refused.items() if n]
        budget, phases = ("oracle", by_oracle) if by_oracle else ("campaign", own)
        attack_metrics().budget_stops.labels(budget=budget, phase=str(phases[-1]) if phases else "labelling").inc()


def attack_metrics() -> AttackMetrics:
    """The process's metrics, created on first use (after `enable_multiprocess`, where that applies)."""
    global _metrics
    if _metrics is None:
        _metrics = AttackMetrics()
    return _metrics


class CampaignStateCollector(Collector):
    def __init__(self, store: CampaignStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("bbrange_attack_campaigns", "Campaigns by state (from Redis)", labels=["state"])
        for state, count in self.store.count_by_state().items():
            gauge.add_metric([state.value], count)
        yield gauge

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("bbrange_attack_campaigns", "Campaigns by state (from Redis)", labels=["state"])]


def exposition_registry(store: CampaignStore | None = None) -> CollectorRegistry:
    """What a /metrics endpoint serves: every process's metrics (multiprocess mode) or this one's, plus
    campaigns by state when a store is given."""
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if directory is not None:
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    else:
        registry.register(_SingleProcess())
    if store is not None:
        registry.register(CampaignStateCollector(store))
    return registry


class _SingleProcess(Collector):
    def collect(self) -> Iterable[Metric]:
        return attack_metrics().registry.collect()

