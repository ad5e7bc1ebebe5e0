"""Running a command, and waiting for something, the way every step of the smoke does."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[3]

T = TypeVar("T")


class SmokeFailure(Exception):
    pass


def run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True, capture: bool = False,
        timeout: float | None = None, quiet: bool = False, cwd: Path | None = REPO) -> subprocess.CompletedProcess:
    if not quiet:
        print("+ " + " ".join(cmd), flush=True)
    result = subprocess.run(cmd, env=env, cwd=cwd, text=True, timeout=timeout,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None)
    if check and result.returncode != 0:
        tail = (result.stderr or result.stdout or "").strip()[-2000:] if capture else ""
        raise SmokeFailure(f"{' '.join(cmd[:4])}… exited {result.returncode}{': ' + tail if tail else ''}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(what: str, probe: Callable[[], T], timeout_s: float, every_s: float = 2.0,
               tolerated: tuple[type[Exception], ...] = ()) -> T:
    """Call probe() until it returns something truthy; SmokeFailure after timeout_s with the last reason."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError, KeyError, *tolerated) as e:
            last = e
        if time.monotonic() > deadline:
            raise SmokeFailure(f"{what}: not within {timeout_s:.0f} s" + (f" (last error: {last})" if last else ""))
        time.sleep(every_s)

