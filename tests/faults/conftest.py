"""The fault suite's tools: a Redis with an append-only file that can be stopped and started again on the same
port (as a restarted server, nothing lost), the process tree of a command, and polling that tolerates 503."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bbrange.attacker.campaigns.client import AttackerClient, CampaignTimeout
from bbrange.shared.processes import Process
from bbrange.shared.stack import RedisServer


@dataclass
class PersistentRedis:
    port: int
    directory: Path
    process: Process | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        server = RedisServer(self.port, directory=self.directory, log=self.directory / "redis.log", append_only=True,
                             fsync_always=True, append_log=True)
        server.start()
        self.process = server.process

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace_s=10)  # SIGTERM: Redis flushes its AOF and exits


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/pid/stat after the command name: state, ppid, ... (None if it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> set[tuple[int, str]]:
    """Every live process below pid (children, grandchildren, ...) as (pid, start time): a pid alone may be
    reused by another process once this one is gone."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(entry)) is not None:
            children.setdefault(int(stat[1]), []).append((int(entry), stat[19]))
    found: set[tuple[int, str]] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child[0])
    return found


def alive(process: tuple[int, str]) -> bool:
    """Still running (not a zombie waiting to be reaped), and the same process (same start time)."""
    stat = _stat(process[0])
    return stat is not None and stat[0] != "Z" and stat[19] == process[1]


def poll_record(client: httpx.Client, cid: str, predicate: Any, timeout: float) -> dict[str, Any]:
    """The campaign's record once predicate holds; 503s and dropped connections (Redis down) are waited out."""
    try:
        record = AttackerClient(http=client).wait_for(cid, lambda r: predicate(r.model_dump(mode="json")), timeout,
                                                      poll_s=0.2, through_outages=True)
    except CampaignTimeout as e:
        raise AssertionError(f"{e}; last record: {e.record}") from None
    return record.model_dump(mode="json")
