"""An idle worker sent SIGTERM while its Redis is down (a whole deployment stopping, Redis first) exits with
status 0 once its Redis retries are spent, instead of starting its work loop again or crashing."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from cryptography.fernet import Fernet

from bbrange.shared.processes import free_port, start_process
from tests.attacker.conftest import rq_worker_field
from tests.conftest import BBRANGE
from tests.faults.conftest import PersistentRedis

REDIS_RETRY_S = 2


def test_sigterm_with_redis_down_stops_an_idle_worker(tmp_path: Path) -> None:
    server = PersistentRedis(free_port(), tmp_path / "redis")
    server.start()
    env = {**os.environ, "BBRANGE_ATTACK_REDIS_URL": server.url(0), "BBRANGE_ATTACK_DATA_DIR": str(tmp_path / "data"),
           "BBRANGE_ATTACK_SECRET_KEY": Fernet.generate_key().decode(),
           "BBRANGE_ATTACK_REDIS_RETRY_S": str(REDIS_RETRY_S)}
    env.pop("BBRANGE_ATTACK_METRICS_DIR", None)
    worker = start_process("worker", [str(BBRANGE), "attack", "worker", "--name", "orphan", "--log-level", "info"],
                           tmp_path / "worker.log", env=env)
    try:
        worker.wait_ready(lambda: rq_worker_field(server.url(0), "orphan", "state") == "idle", 60, 0.1)
        server.stop()
        worker.popen.send_signal(signal.SIGTERM)
        try:
            status = worker.popen.wait(REDIS_RETRY_S + 10)
        except subprocess.TimeoutExpired:
            status = None
        assert status == 0, f"exit status {status} (None: still running); log:\n{worker.log_tail(4000)}"
    finally:
        worker.stop(grace_s=1)
        server.stop()
