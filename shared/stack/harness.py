"""The stack harness: Redis, oracles, the attacker API and its workers as child processes on loopback, each
with its log file and readiness check, stopped in a safe order when the block ends.

    with Stack(workdir / "logs") as stack:
        redis = stack.start_redis()
        oracle = stack.start_oracle(model_dir, redis.url, env=oracle_env("admin-token"))
        api = stack.start_attacker_api(env=attacker_env(redis.db_url(1), workdir / "campaigns", "attack-token"))
        stack.start_worker("w1", env=...)
        ...

The range (`bbrange up`/`demo`), the tests and the benchmarks start the services through it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bbrange.shared.processes import Process, free_port, http_ok, start_process, stop_all
from bbrange.shared.stack import commands
from bbrange.shared.stack.redis import RedisServer

__all__ = ["Service", "Stack"]


@dataclass
class Service:
    """A started process that answers HTTP on a loopback origin."""

    name: str
    url: str
    process: Process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> Path | None:
        return self.process.log

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def wait_ready(self, path: str = "/healthz", timeout_s: float = 60.0, interval_s: float = 0.1) -> None:
        """Until GET path answers 200; ProcessNotReady (with the log's tail) if the process exits or times out."""
        url = self.url + path
        self.process.wait_ready(lambda: http_ok(url, timeout_s=2.0), timeout_s=timeout_s, interval_s=interval_s)


class Stack:
    """Child processes started in order and stopped in reverse, workers first; a context manager.

    log_dir: each process's output goes to log_dir/<name>.log unless a log is given. env: the environment
    every process starts from (os.environ when None), to which each start adds its own. launcher: how to run
    the bbrange CLI (`python -m bbrange` when None). own_session: each child in a new session and process group,
    signalled whole on stop (so what it forked goes too) and out of reach of the terminal's Ctrl-C.
    die_with_parent: on Linux a child gets SIGTERM if this process dies without stopping it. append_logs: logs
    of an earlier run in the same log_dir are kept."""

    def __init__(self, log_dir: Path, *, env: Mapping[str, str] | None = None, launcher: Sequence[str] | None = None,
                 cwd: Path | None = None, own_session: bool = False, die_with_parent: bool = False,
                 append_logs: bool = False, stop_grace_s: float = 15.0) -> None:
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        self.launcher = list(launcher) if launcher is not None else commands.bbrange_launcher()
        self.cwd = cwd
        self.own_session = own_session
        self.die_with_parent = die_with_parent
        self.append_logs = append_logs
        self.stop_grace_s = stop_grace_s
        self.processes: list[Process] = []
        self.workers: list[Process] = []
        self._ports: set[int] = set()

    # ------------------------------------------------------------------ starting

    def port(self, wanted: int = 0) -> int:
        """wanted, or a free loopback port when 0 (never one this stack already gave out: the OS may offer a
        port twice while nobody listens on it yet)."""
        port = wanted or free_port()
        while not wanted and port in self._ports:
            port = free_port()
        self._ports.add(port)
        return port

    def spawn(self, name: str, command: list[str], *, env: Mapping[str, str] | None = None,
              log: Path | None = None, cwd: Path | None = None) -> Process:
        """Start any command as a member of the stack; env is added to the stack's environment."""
        process = start_process(name, command, log or self.log_dir / f"{_file_name(name)}.log",
                                env={**self.env, **(env or {})}, cwd=cwd or self.cwd, append=self.append_logs,
                                own_session=self.own_session, die_with_parent=self.die_with_parent)
        self.processes.append(process)
        return process

    def start_service(self, name: str, command: Callable[[int], list[str]], *, port: int = 0,
                      env: Mapping[str, str] | None = None, log: Path | None = None, ready_path: str | None = "/healthz",
                      ready_timeout_s: float = 60.0, cwd: Path | None = None) -> Service:
        """An HTTP service: command(port) on the port given (a free one when 0), waited for unless ready_path
        is None (then call its wait_ready)."""
        port = self.port(port)
        service = Service(name, f"http://127.0.0.1:{port}", self.spawn(name, command(port), env=env, log=log, cwd=cwd))
        if ready_path is not None:
            try:
                service.wait_ready(ready_path, ready_timeout_s)
            except BaseException:  # it will not be ready: nothing should wait for the stack's end to stop it
                service.process.stop(grace_s=5.0, group=self.own_session)
                self.processes.remove(service.process)
                raise
        return service

    def start_redis(self, port: int = 0, *, directory: Path | None = None, append_only: bool = False,
                    fsync_always: bool = False, executable: str | None = None, log: Path | None = None,
                    name: str = "redis") -> RedisServer:
        """A private redis-server (see RedisServer), stopped after everything else in the stack."""
        server = RedisServer(self.port(port), directory=directory, log=log or self.log_dir / f"{name}.log",
                             append_only=append_only, fsync_always=fsync_always, executable=executable,
                             own_session=self.own_session, die_with_parent=self.die_with_parent,
                             append_log=self.append_logs)
        try:
            server.start()
        finally:
            if server.process is not None:
                self.processes.append(server.process)
        return server

    def start_oracle(self, model_dir: Path, redis_url: str, *, port: int = 0, name: str = "oracle",
                     env: Mapping[str, str] | None = None, device: str = "cpu", models: Iterable[str] = (),
                     host: str | None = None, log_level: str | None = "warning", log: Path | None = None,
                     ready_path: str | None = "/healthz", ready_timeout_s: float = 60.0) -> Service:
        """`bbrange oracle serve`; env: its settings (commands.oracle_env) and any other BBRANGE_* to set."""
        models = list(models)
        return self.start_service(
            name, lambda p: commands.oracle_serve(p, model_dir, redis_url, launcher=self.launcher, host=host,
                                                  device=device, models=models, log_level=log_level),
            port=port, env=env, log=log, ready_path=ready_path, ready_timeout_s=ready_timeout_s)

    def start_attacker_api(self, *, port: int = 0, name: str = "attacker-api", env: Mapping[str, str] | None = None,
                           host: str | None = None, redis_url: str | None = None, log_level: str | None = None,
                           log: Path | None = None, ready_path: str | None = "/readyz",
                           ready_timeout_s: float = 60.0) -> Service:
        """`bbrange attack serve`; env: its settings (commands.attacker_env), the same as its workers'."""
        return self.start_service(
            name, lambda p: commands.attack_serve(p, launcher=self.launcher, host=host, redis_url=redis_url,
                                                  log_level=log_level),
            port=port, env=env, log=log, ready_path=ready_path, ready_timeout_s=ready_timeout_s)

    def start_worker(self, worker_name: str, *, name: str | None = None, env: Mapping[str, str] | None = None,
                     torch_threads: int | None = None, log_level: str | None = None, log: Path | None = None) -> Process:
        """`bbrange attack worker --name worker_name`; stopped before the rest of the stack."""
        command = commands.attack_worker(worker_name, launcher=self.launcher, torch_threads=torch_threads,
                                         log_level=log_level)
        worker = self.spawn(name or f"worker-{worker_name}", command, env=env, log=log)
        self.workers.append(worker)
        return worker

    # ------------------------------------------------------------------ running and stopping

    def check_alive(self) -> Process | None:
        """The first process of the stack that has exited, or None while all run."""
        return next((p for p in self.processes if p.poll() is not None), None)

    def stop_workers(self, warm_s: float = 2.0, cold_s: float = 10.0) -> None:
        """An RQ worker stops warm (after its job) on the first SIGTERM and cold (killing the work horse) on the
        second: every worker gets the first at once, then warm_s, a second SIGTERM and cold_s before SIGKILL."""
        for w in self.workers:
            w.terminate(group=self.own_session)
        for w in self.workers:
            w.stop(grace_s=warm_s, group=self.own_session, again_s=cold_s)
        self.processes = [p for p in self.processes if p not in self.workers]
        self.workers.clear()

    def stop(self) -> None:
        """Workers first, then the rest in reverse order of start (the APIs before the Redis they use)."""
        self.stop_workers()
        stop_all(reversed(self.processes), grace_s=self.stop_grace_s, group=self.own_session)
        self.processes.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-") or "process"
