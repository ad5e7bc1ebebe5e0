"""`bbrange up` and `bbrange demo` sent SIGTERM (docker stop, systemd, Kubernetes, a cancelled CI job) stop
every process they started, the work horse training a campaign's substitute included."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from bbrange.shared.processes import start_process, wait_until
from tests.conftest import BBRANGE
from tests.faults.conftest import alive, descendants


def _sigterm_leaves_nothing(command: list[str], log: Path, ready: str, min_processes: int) -> None:
    range_ = start_process("range", command, log)
    seen: set[tuple[int, str]] = set()

    def started() -> bool:
        assert range_.poll() is None, log.read_text()[-3000:]
        seen.update(descendants(range_.pid))
        return ready in log.read_text() and len(descendants(range_.pid)) >= min_processes

    try:
        wait_until(started, 240, f"the range to reach: {ready!r}", interval_s=0.2)
        seen.update(descendants(range_.pid))
        range_.popen.send_signal(signal.SIGTERM)
        range_.popen.wait(60)
        try:
            wait_until(lambda: not [p for p in seen if alive(p)], 10, "every process of the range to exit")
        except TimeoutError:
            left = {p: Path(f"/proc/{p[0]}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for p in seen if alive(p)}
            raise AssertionError(f"left behind: {left}") from None
    finally:
        range_.stop(grace_s=5)
        for process in seen:  # never leave anything behind, whatever happened
            if alive(process):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process[0], signal.SIGKILL)
    assert range_.returncode is not None
    assert len(seen) >= min_processes, seen


def test_bbrange_up_stopped_with_sigterm(quick_model_dir: Path, tmp_path: Path) -> None:
    _sigterm_leaves_nothing(
        [str(BBRANGE), "up", "--workdir", str(tmp_path / "range"), "--model-dir", str(quick_model_dir),
         "--redis-port", "0", "--oracle-port", "0", "--attacker-port", "0", "--device", "cpu"],
        tmp_path / "up.log", "Ctrl-C stops everything", min_processes=4)


def test_bbrange_demo_stopped_with_sigterm_while_training(quick_model_dir: Path, tmp_path: Path) -> None:
    # redis, oracle, attacker API, worker, and the work horse running the campaign
    _sigterm_leaves_nothing(
        [str(BBRANGE), "demo", "--workdir", str(tmp_path / "demo"), "--model-dir", str(quick_model_dir),
         "--eval-size", "100", "--device", "cpu"],
        tmp_path / "demo.log", "queued", min_processes=5)

