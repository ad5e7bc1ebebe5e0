"""Attacker-service fixtures: a real API process and real RQ worker processes on their own Redis DB,
against the real oracle processes of tests/conftest.py."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bbrange.attacker.campaigns.client import AttackerClient, CampaignTimeout
from bbrange.attacker.campaigns.spec.builder import bbrange_target
from bbrange.shared.processes import Process, free_port
from bbrange.shared.service_client import ServiceError
from bbrange.shared.stack import Stack, commands
from tests.conftest import BBRANGE, OracleProcess, RedisServer
from tests.specs import campaign_spec as small_campaign

FINAL_STATES = ("succeeded", "failed", "cancelled")
ADMIN_TOKEN = "attack-admin-test-token"


@dataclass
class AttackerStack:
    url: str
    redis_url: str
    data_dir: Path
    metrics_dir: Path
    log_dir: Path
    env: dict[str, str]
    api: Process | None = None
    workers: list[Process] = field(default_factory=list)
    token: str = ""  # a user's, created when the API first starts
    harness: Stack | None = None

    def client(self, token: str | None = None) -> httpx.Client:
        """A client of the API as the stack's user (or with the token given; "" sends none)."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def admin(self) -> httpx.Client:
        return self.client(ADMIN_TOKEN)

    def create_user(self, name: str) -> tuple[str, str]:
        """A new user of the API: (id, token)."""
        with AttackerClient(self.url, ADMIN_TOKEN) as admin:
            created = admin.create_user(name)
        return created.user.id, created.token

    def _harness(self) -> Stack:
        if self.harness is None:  # every variable comes from self.env, which a test may change between starts
            self.harness = Stack(self.log_dir, env={}, launcher=[str(BBRANGE)])
        return self.harness

    def start_api(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.api = self._harness().start_attacker_api(
            port=port, name="attacker API", env=self.env, log_level="warning",
            log=self.log_dir / f"api-{port}-{time.monotonic_ns()}.log").process
        if not self.token:
            self.token = self.create_user("tests")[1]

    def start_worker(self, name: str) -> Process:
        worker = self._harness().start_worker(name, name=f"worker {name}", env=self.env, torch_threads=1,
                                              log_level="warning", log=self.log_dir / f"worker-{name}.log")
        self.workers.append(worker)
        return worker

    def stop_api(self) -> None:
        if self.api is not None:
            self.api.stop(grace_s=5)

    def stop(self) -> None:
        for w in self.workers:
            # An RQ worker shuts down warm (after its job) on the first SIGTERM and cold on the second.
            w.stop(grace_s=5, again_s=10)
        self.stop_api()


def start_stack(redis: RedisServer, db: int, tmp: Path, workers: int, extra_env: dict[str, str] | None = None,
                oracles: list[OracleProcess] | tuple[OracleProcess, ...] = ()) -> AttackerStack:
    """The API (with a user whose token `stack.client()` sends) and `workers` workers; `oracles` are allowlisted."""
    for sub in ("data", "metrics", "logs"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    redis_url = f"redis://127.0.0.1:{redis.port}/{db}"
    env = {**os.environ, **commands.attacker_env(redis_url, tmp / "data", ADMIN_TOKEN, metrics_dir=tmp / "metrics",
                                                 oracle_allowlist=[o.url for o in oracles]), **(extra_env or {})}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    stack = AttackerStack(f"http://127.0.0.1:{free_port()}", redis_url, tmp / "data", tmp / "metrics", tmp / "logs",
                          env)
    try:
        stack.start_api()
        for i in range(workers):
            stack.start_worker(f"w{i}-{db}")
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture
def oracle_key(oracle: OracleProcess, request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh oracle client (id, API key) per test, so its usage is the test's alone."""
    budget = getattr(request, "param", 100_000)
    return oracle.create_client(budget=budget, name=request.node.name[:60].replace("[", "-").replace("]", ""))


def small_spec(oracle_url: str, api_key: str, **overrides: Any) -> dict[str, Any]:
    """The tests' small campaign (tests.specs) against this oracle with this key; `overrides` as it takes them
    (target, substitute and evaluation merged, other sections replaced)."""
    target = overrides.pop("target", {})
    return small_campaign(target={**bbrange_target(oracle_url, api_key), **target}, **overrides)


def submit(client: httpx.Client, spec: dict[str, Any]) -> str:
    try:
        return AttackerClient(http=client).submit(spec).id
    except ServiceError as e:
        raise AssertionError(f"submission refused: {e}; {e.error.details}") from None


def wait_for(client: httpx.Client, cid: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 120,
             what: str = "") -> dict[str, Any]:
    """Poll the campaign until predicate holds for its record (as the API's JSON); AssertionError on timeout."""
    try:
        record = AttackerClient(http=client).wait_for(cid, lambda r: predicate(r.model_dump(mode="json")), timeout,
                                                      poll_s=0.1, what=what)
    except CampaignTimeout as e:
        raise AssertionError(f"{e}; last record: {e.record}") from None
    return record.model_dump(mode="json")


def wait_final(client: httpx.Client, cid: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(client, cid, lambda r: r["state"] in FINAL_STATES, timeout, f"campaign {cid} to finish")


def oracle_answered(oracle: OracleProcess, client_id: str) -> int:
    """The oracle's own count of inputs answered for this client, from its Prometheus /metrics."""
    text = httpx.get(oracle.url + "/metrics", timeout=10).text
    pattern = rf'^bbrange_oracle_inputs_answered_total\{{[^}}]*client="{re.escape(client_id)}"[^}}]*\}} (\S+)$'
    return int(sum(float(m) for m in re.findall(pattern, text, flags=re.MULTILINE)))


def rq_worker_field(redis_url: str, name: str, field: str) -> str | None:
    """A field of RQ's registration of a worker (state: idle, busy...; death: when it unregistered)."""
    with redis.Redis.from_url(redis_url) as r:
        value = r.hget(f"rq:worker:{name}", field)
    return None if value is None else value.decode()


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
