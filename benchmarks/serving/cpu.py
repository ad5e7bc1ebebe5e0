"""Where the CPU went during a cell: the server's, Redis's and the load generator's own CPU time from /proc, the
rest of the machine as "other"; and the oracle's own request and forward histograms from its /metrics."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15 of stat(5)


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine, summed over cores, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


@dataclass
class CpuSnapshot:
    wall: float
    server: float
    redis: float
    client: float
    machine: float

    @classmethod
    def take(cls, server_pid: int, redis_pid: int) -> CpuSnapshot:
        return cls(time.perf_counter(), cpu_seconds(server_pid), cpu_seconds(redis_pid), time.process_time(),
                   machine_busy_seconds())


def cpu_shares(a: CpuSnapshot, b: CpuSnapshot) -> dict[str, float]:
    """CPU use between two snapshots, in % of one core (200 % = two cores busy)."""
    wall = b.wall - a.wall
    server, redis, client = b.server - a.server, b.redis - a.redis, b.client - a.client
    other = max(0.0, (b.machine - a.machine) - server - redis - client)
    return {k: 100.0 * v / wall for k, v in
            {"server": server, "redis": redis, "client": client, "other": other}.items()}


# --------------------------------------------------------------------------- server metrics


_METRIC_LINE = re.compile(r'^(bbrange_oracle_(?:request|inference)_seconds)_(sum|count)\{([^}]*)\} (\S+)$')


def server_metrics(client: httpx.Client, model: str) -> dict[str, float]:
    """Sums and counts of the oracle's own request and forward-time histograms for this model."""
    out = {"request_sum": 0.0, "request_count": 0.0, "inference_sum": 0.0, "inference_count": 0.0}
    for line in client.get("/metrics").text.splitlines():
        m = _METRIC_LINE.match(line)
        if m and f'model="{model}"' in m.group(3):
            kind = "request" if "request" in m.group(1) else "inference"
            out[f"{kind}_{m.group(2)}"] += float(m.group(4))
    return out
