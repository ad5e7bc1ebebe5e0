"""`bbrange attack worker` and SIGTERM (docker stop, Kubernetes): an idle worker exits at once with status 0; a
busy one finishes its campaign first (warm shutdown), then exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bbrange.shared.processes import Process, start_process
from tests.attacker.conftest import (
    AttackerStack,
    rq_worker_field,
    small_spec,
    start_stack,
    submit,
    wait_final,
    wait_for,
)
from tests.conftest import BBRANGE, OracleProcess, RedisServer

DB = 13  # the other test modules' stacks use DBs 1-6


def _exit_status_within(worker: Process, seconds: float) -> int | None:
    try:
        return worker.popen.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
def idle_worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[Process, str, str]]:
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    name = f"idle-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BBRANGE_ATTACK_REDIS_URL": redis_url, "BBRANGE_ATTACK_DATA_DIR": str(tmp_path / "data"),
           "BBRANGE_ATTACK_SECRET_KEY": Fernet.generate_key().decode()}
    env.pop("BBRANGE_ATTACK_METRICS_DIR", None)
    worker = start_process("idle worker", [str(BBRANGE), "attack", "worker", "--name", name, "--log-level", "info"],
                           tmp_path / "worker.log", env=env)
    try:
        worker.wait_ready(lambda: rq_worker_field(redis_url, name, "state") == "idle", timeout_s=60, interval_s=0.1)
        yield worker, redis_url, name
    finally:
        worker.stop(grace_s=1)  # SIGKILL if SIGTERM did not do it


def test_sigterm_stops_an_idle_worker_promptly(idle_worker: tuple[Process, str, str]) -> None:
    worker, redis_url, name = idle_worker
    time.sleep(1)  # idle for a while: blocked waiting for a job
    worker.popen.send_signal(signal.SIGTERM)
    status = _exit_status_within(worker, 8)
    assert status == 0, f"exit status {status} 8 s after SIGTERM (None: still running); log:\n{worker.log_tail()}"
    assert rq_worker_field(redis_url, name, "death") is not None, "the worker did not unregister"


def test_sigint_stops_an_idle_worker_too(idle_worker: tuple[Process, str, str]) -> None:
    worker, _, _ = idle_worker
    worker.popen.send_signal(signal.SIGINT)
    status = _exit_status_within(worker, 8)
    assert status == 0, f"exit status {status} 8 s after SIGINT (None: still running); log:\n{worker.log_tail()}"


@pytest.fixture(scope="module")
def busy_stack(redis_server: RedisServer, data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
               oracle_pair: tuple[OracleProcess, OracleProcess]) -> Iterator[AttackerStack]:
    stack = start_stack(redis_server, DB + 1, tmp_path_factory.mktemp("busy"), workers=1, oracles=oracle_pair)
    yield stack
    stack.stop()


def test_sigterm_lets_a_busy_worker_finish_its_campaign(busy_stack: AttackerStack, oracle: OracleProcess) -> None:
    _, key = oracle.create_client(100_000, name="warm-shutdown")
    worker = busy_stack.workers[0]
    with busy_stack.client() as api:
        cid = submit(api, small_spec(oracle.url, key, substitute={"rho": 3}))
        wait_for(api, cid, lambda r: r["state"] == "running" and r["phase"] != "connecting", what="a running campaign")
        worker.popen.send_signal(signal.SIGTERM)
        time.sleep(2)
        assert worker.poll() is None, f"the worker did not wait for its campaign; log:\n{worker.log_tail()}"
        record = wait_final(api, cid, timeout=180)
    assert record["state"] == "succeeded", record
    status = _exit_status_within(worker, 15)
    assert status == 0, f"exit status {status} after its campaign (None: still running); log:\n{worker.log_tail()}"
    assert rq_worker_field(busy_stack.redis_url, f"w0-{DB + 1}", "death") is not None, "the worker did not unregister"
