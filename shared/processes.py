"""Child processes on loopback: start one with its output in a log file, wait until it is ready, stop it.

The local range, the tests and the benchmarks all run the services as real processes (redis-server,
`bbrange oracle serve`, ...); this is the one place that knows how to start, probe and stop them.

    port = free_port()
    oracle = start_process("oracle", ["bbrange", "oracle", "serve", "--port", str(port)], log=logs / "oracle.log")
    try:
        oracle.wait_ready(f"http://127.0.0.1:{port}/healthz", timeout_s=60)
        ...
    finally:
        oracle.stop()
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "Process", "ProcessNotReady", "die_with_parent", "free_port", "http_ok", "port_is_free", "redis_pong", "start_process",
    "stop_all", "wait_until",
]


class ProcessNotReady(RuntimeError):
    """A started process exited, or did not become ready in time; the message ends with its log's tail."""


def free_port() -> int:
    """A loopback TCP port nobody listens on now (the OS picks it; another process may take it before us)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """Whether GET url answers 200 now; a refused connection or a timeout is a no, not an error."""
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def redis_pong(port: int, timeout_s: float = 0.5) -> bool:
    """Whether a Redis server on this loopback port answers PING (spoken raw: no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Poll predicate until it is true; TimeoutError naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """On Linux, this process gets `sig` when its parent dies, however it dies (a forked child calls it itself;
    start_process(die_with_parent=True) has a child call it before exec). Elsewhere it does nothing."""
    if sys.platform == "linux":
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG


def _die_with_parent() -> None:
    die_with_parent(signal.SIGTERM)


@dataclass
class Process:
    """A started child process, with where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def poll(self) -> int | None:
        """The exit code, or None while it runs (as subprocess.Popen.poll)."""
        return self.popen.poll()

    def log_tail(self, chars: int = 2000) -> str:
        if self.log is None:
            return "(no log)"
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_ready(self, ready: str | Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> None:
        """Poll until ready (a URL that must answer 200, or a callable) is true.

        ProcessNotReady as soon as the process exits, or after timeout_s: either way it will not become ready,
        and its log says why."""
        probe: Callable[[], bool] = (lambda: http_ok(ready)) if isinstance(ready, str) else ready
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.poll() is not None:
                raise ProcessNotReady(f"{self.name} exited with code {self.returncode} while starting; "
                                      f"log {self.log}:\n{self.log_tail()}")
            if probe():
                return
            time.sleep(interval_s)
        raise ProcessNotReady(f"{self.name} was not ready after {timeout_s:g} s; log {self.log}:\n{self.log_tail()}")

    def terminate(self, group: bool = False) -> None:
        """SIGTERM the process, or its whole process group (it must have been started with own_session)."""
        if group:
            # Also when the process itself is gone: a grandchild might not be.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM if self.poll() is None else signal.SIGKILL)
        elif self.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def wait_or_kill(self, timeout_s: float, group: bool = False) -> bool:
        """Wait up to timeout_s for the process to exit, then SIGKILL it; it is reaped either way.
        True if it had to be killed."""
        try:
            self.popen.wait(max(timeout_s, 0.1))
            return False
        except subprocess.TimeoutExpired:
            if group:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
            else:
                self.popen.kill()
            self.popen.wait()
            return True

    def stop(self, grace_s: float = 10.0, *, group: bool = False, again_s: float | None = None) -> bool:
        """SIGTERM, then SIGKILL after grace_s; True if it had to be killed.

        again_s: if it has not exited after grace_s, a second SIGTERM and again_s more before SIGKILL (an RQ
        worker stops warm, after its job, on the first SIGTERM and cold on the second)."""
        if self.poll() is not None:
            if group:
                self.terminate(group=True)
            return False
        self.terminate(group)
        if again_s is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace_s)
                return False
            self.terminate(group)
            grace_s = again_s
        return self.wait_or_kill(grace_s, group)


def start_process(
    name: str, command: list[str], log: Path | None = None, *, env: Mapping[str, str] | None = None,
    cwd: Path | None = None, append: bool = False, own_session: bool = False, die_with_parent: bool = False,
) -> Process:
    """Start command with stdout and stderr in log (discarded when None); it reads nothing from stdin.

    own_session: a new session and process group, so that a Ctrl-C on the terminal reaches only the caller,
    which stops its children in its own order (and can signal a child's whole group).
    die_with_parent: on Linux, the child gets SIGTERM if the caller dies without stopping it."""
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    with open(log if log is not None else os.devnull, "ab" if append else "wb") as out:
        popen = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=own_session,
            preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,
        )
    return Process(name, popen, log)


def stop_all(processes: Iterable[Process], grace_s: float = 15.0, *, group: bool = False) -> None:
    """SIGTERM every process in the order given, then give them grace_s together before SIGKILL.

    group: signal each process's whole group (they were started with own_session), so that what they forked
    (an RQ worker's work horse) goes with them; what is left of a group after grace_s is killed."""
    stopping = list(processes)
    for p in stopping:
        p.terminate(group)
    deadline = time.monotonic() + grace_s
    for p in stopping:
        p.wait_or_kill(deadline - time.monotonic(), group)
        if group:  # the leader exited: anything it left in its group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
