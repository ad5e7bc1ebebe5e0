"""Every metric the dashboards and alert rules query is really exported: real processes are started (a private
redis-server, the oracle, the attacker API), their /metrics are scraped, and each selector's metric name (and
label names) must be there. Counters count as `<name>_total`, histograms as `_bucket`/`_sum`/`_count`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from bbrange.shared.datasets import Dataset
from bbrange.shared.processes import free_port, start_process
from bbrange.shared.wire import encode_npy
from tests.conftest import BBRANGE, OracleProcess, RedisServer, start_oracle
from tests.deploy.queries import PROMETHEUS_SYNTHETIC, TARGET_LABELS, all_queries

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",),
             "stateset": ("",), "gaugehistogram": ("_bucket", "_gsum", "_gcount"), "unknown": ("",)}


@dataclass
class Exported:
    """Series names a scrape offers (from TYPE lines, so declared-but-unobserved metrics count) and the
    label names seen on their samples."""

    labels: dict[str, set[str]] = field(default_factory=dict)

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for suffix in _SUFFIXES[family.type]:
                self.labels.setdefault(family.name + suffix, set())
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)


def scrape(url: str) -> str:
    r = httpx.get(url + "/metrics", timeout=10)
    r.raise_for_status()
    assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
    return r.text


@pytest.fixture(scope="module")
def deploy_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oracle_metrics(quick_model_dir: Path, deploy_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory,
                   mnist_test: Dataset) -> Exported:
    oracle: OracleProcess = start_oracle(quick_model_dir, deploy_redis.url, "bbdeploy", tmp_path_factory.mktemp("logs"))
    try:
        _, key = oracle.create_client(budget=20, name="deploy-test")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-npy"}
        x = np.asarray(mnist_test.x[:5])
        ok = httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=encode_npy(x), headers=headers, timeout=30)
        assert ok.status_code == 200, ok.text
        refused = httpx.post(f"{oracle.url}/v1/models/no-such-model/predict", content=encode_npy(x), headers=headers,
                             timeout=30)
        assert refused.status_code == 404, refused.text
        exported = Exported()
        exported.add(scrape(oracle.url))
        return exported
    finally:
        oracle.stop()


@pytest.fixture(scope="module")
def attacker_metrics(deploy_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """The attacker API as docker compose and k8s run it (`bbrange attack serve`)."""
    work = tmp_path_factory.mktemp("attacker")
    port = free_port()
    redis_url = f"redis://127.0.0.1:{deploy_redis.port}/1"
    env = {**os.environ, "BBRANGE_ATTACK_REDIS_URL": redis_url, "BBRANGE_ATTACK_DATA_DIR": str(work / "campaigns"),
           "BBRANGE_ATTACK_REDIS_PREFIX": "bbdeploy:attack", "BBRANGE_ATTACK_SECRET_KEY": Fernet.generate_key().decode()}
    process = start_process(
        "`bbrange attack serve`",
        [str(BBRANGE), "attack", "serve", "--host", "127.0.0.1", "--port", str(port), "--redis-url", redis_url],
        work / "attacker-api.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_ready(url + "/healthz", timeout_s=60, interval_s=0.1)
        exported = Exported()
        exported.add(scrape(url))
        yield exported
    finally:
        process.stop(grace_s=15)


def _check(prefix: str, exported: Exported) -> None:
    problems = []
    for query in all_queries():
        for selector in query.selectors():
            if not selector.metric.startswith(prefix):
                continue
            if selector.metric not in exported.labels:
                problems.append(f"{query.where}: {selector.metric} is not exported")
                continue
            seen = exported.labels[selector.metric]
            if seen:  # label names can only be checked on metrics that have samples
                unknown = selector.labels - seen - TARGET_LABELS
                if unknown:
                    problems.append(f"{query.where}: {selector.metric} has no label {sorted(unknown)} "
                                    f"(it has {sorted(seen)})")
    assert not problems, "\n".join(problems)


def test_every_queried_metric_is_known() -> None:
    names = {s.metric for q in all_queries() for s in q.selectors()}
    stray = {n for n in names - PROMETHEUS_SYNTHETIC if not n.startswith(("bbrange_oracle_", "bbrange_attack_"))}
    assert not stray, f"metrics from no blackbox-range service: {sorted(stray)}"


def test_oracle_metrics_in_dashboards_and_rules_are_exported(oracle_metrics: Exported) -> None:
    _check("bbrange_oracle_", oracle_metrics)


def test_attacker_metrics_in_dashboards_and_rules_are_exported(attacker_metrics: Exported) -> None:
    _check("bbrange_attack_", attacker_metrics)


def test_the_checker_catches_a_misspelt_metric(oracle_metrics: Exported) -> None:
    assert "bbrange_oracle_inputs_answered_total" in oracle_metrics.labels
    assert "bbrange_oracle_inputs_answered" not in oracle_metrics.labels  # the counter's bare name is no series
    assert {"client", "model"} <= oracle_metrics.labels["bbrange_oracle_inputs_answered_total"]
    assert "bbrange_oracle_request_seconds_bucket" in oracle_metrics.labels
    assert "bbrange_oracle_request_seconds" not in oracle_metrics.labels
