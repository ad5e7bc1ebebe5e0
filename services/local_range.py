"""The whole range as plain processes on loopback: Redis, the oracle, the attacker API and its workers.

This is what `bbrange up` and `bbrange demo` run; docker compose and k8s run the same commands in
containers.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from rich.console import Console

from bbrange.attacker.campaigns.client import AttackerClient
from bbrange.shared.devices import resolve_device
from bbrange.shared.model_card import card_path, unusable_reason
from bbrange.shared.oracle_admin import OracleAdmin
from bbrange.shared.processes import ProcessNotReady, port_is_free
from bbrange.shared.stack import NoRedisServer, Stack, commands


class RangeError(RuntimeError):
    pass


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
    stack: Stack | None = None

    def _check_port(self, wanted: int, what: str) -> None:
        if wanted != 0 and not port_is_free(wanted):
            raise RangeError(f"port {wanted} for {what} is taken; choose another with the --{what}-port option")

    def _env(self, endpoints: RangeEndpoints) -> dict[str, str]:
        metrics_dir = self.workdir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)  # multiprocess files of processes that are gone
        metrics_dir.mkdir(parents=True)
        env = {**os.environ,
               **commands.oracle_env(endpoints.admin_token, model_dir=self.model_dir, redis_url=endpoints.redis_url),
               # The attacker keeps its state in its own Redis database of the same server.
               **commands.attacker_env(endpoints.redis_url.rsplit("/", 1)[0] + "/1", self.workdir / "campaigns",
                                       endpoints.attack_admin_token, metrics_dir=metrics_dir,
                                       oracle_allowlist=[endpoints.oracle_url], device=self.device),
               "PYTHONUNBUFFERED": "1"}
        if self.data_dir is not None:
            env["BBRANGE_DATA_DIR"] = str(self.data_dir)
        return env

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
        for wanted, what in ((self.redis_port, "redis"), (self.oracle_port, "oracle"), (self.attacker_port, "attacker")):
            self._check_port(wanted, what)
        # Logs are appended to, so that those of an earlier run of the same workdir are kept. A new session per
        # child, so Ctrl-C reaches only us and we stop the children in order, each with what it forked.
        self.stack = stack = Stack(self.workdir / "logs", append_logs=True, own_session=True, die_with_parent=True)
        redis_port, oracle_port, attacker_port = (stack.port(p) for p in
                                                  (self.redis_port, self.oracle_port, self.attacker_port))
        endpoints = RangeEndpoints(
            redis_url=f"redis://127.0.0.1:{redis_port}/0",
            oracle_url=f"http://127.0.0.1:{oracle_port}",
            attacker_url=f"http://127.0.0.1:{attacker_port}",
            admin_token=secrets.token_urlsafe(24),
            attack_admin_token=secrets.token_urlsafe(24),
        )
        stack.env = self._env(endpoints)
        try:
            stack.start_redis(redis_port, directory=self.workdir / "redis", append_only=True)
            oracle = stack.start_oracle(self.model_dir, endpoints.redis_url, port=oracle_port, device=self.device,
                                        ready_path=None)
            attacker = stack.start_attacker_api(port=attacker_port, ready_path=None)
            for i in range(self.workers):
                stack.start_worker(f"range-worker-{i + 1}", name=f"attacker-worker-{i + 1}")
            oracle.wait_ready("/readyz", 120)
            attacker.wait_ready("/healthz", 120)
        except (ProcessNotReady, NoRedisServer) as e:
            raise RangeError(str(e)) from None
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
        if self.stack is not None and (exited := self.stack.check_alive()) is not None:
            raise RangeError(f"{exited.name} exited with code {exited.returncode}; log {exited.log}")

    def stop(self) -> None:
        # Workers first: a second SIGTERM stops an RQ worker cold, killing the work horse that trains a campaign
        # (the first only asks it to stop after the campaign). Then the APIs, Redis last, so that nothing loses
        # its store while still working. Each with its process group, so nothing they forked stays.
        if self.stack is not None:
            self.stack.stop()

    def __enter__(self) -> RangeEndpoints:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
