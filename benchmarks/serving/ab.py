"""ApacheBench (`ab`, Debian's apache2-utils) as the load generator of serving_side_by_side.py: written in C,
it takes little of the CPU the servers measured need. Posts one Open Inference Protocol V2 binary request body
from a file, over and over, and reads the rate and latency percentiles from its report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class AbResult:
    clients: int
    complete: int
    failed: int  # connect, receive and exceptions; ab's "Length" failures are not failures of the server
    non_2xx: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float

    @property
    def answered(self) -> int:
        return self.complete - self.failed - self.non_2xx


@dataclass(frozen=True)
class MachineLoad:
    """The machine's load average and, over the last second, its busy share of all cores."""

    loadavg_1m: float
    busy_share: float

    @classmethod
    def now(cls) -> MachineLoad:
        def busy_idle() -> tuple[int, int]:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
            idle = fields[3] + fields[4]
            return sum(fields) - idle, idle

        b0, i0 = busy_idle()
        time.sleep(1.0)
        b1, i1 = busy_idle()
        share = (b1 - b0) / max((b1 - b0) + (i1 - i0), 1)
        return cls(float(Path("/proc/loadavg").read_text().split()[0]), round(share, 3))


def ab_executable() -> str:
    found = shutil.which("ab")
    if found is None:
        raise RuntimeError("ApacheBench is missing: apt-get install -y apache2-utils")
    return found


def write_v2_body(directory: Path, x: np.ndarray, input_name: str) -> tuple[Path, int]:
    """A V2 infer request for batch x with its tensor as binary data after the JSON (tritonclient's default, the
    label output asked for in binary too): the file ab posts, and the JSON's length, for the
    Inference-Header-Content-Length header."""
    head = json.dumps({"inputs": [{"name": input_name, "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "outputs": [{"name": "label", "parameters": {"binary_data": True}}]}).encode()
    path = directory / f"v2-{len(x)}-{input_name}.bin"
    path.write_bytes(head + np.ascontiguousarray(x, dtype="<f4").tobytes())
    return path, len(head)


def _number(pattern: str, text: str, default: float | None = None) -> float:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        if default is not None:
            return default
        raise RuntimeError(f"ab's report has no {pattern!r}:\n{text[-2000:]}")
    return float(found.group(1))


def parse_report(text: str, clients: int) -> AbResult:
    failures = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", text)
    failed = 0 if failures is None else int(failures.group(1)) + int(failures.group(2)) + int(failures.group(4))
    return AbResult(
        clients=clients,
        complete=int(_number(r"^Complete requests:\s+(\d+)", text)),
        failed=failed,
        non_2xx=int(_number(r"^Non-2xx responses:\s+(\d+)", text, 0.0)),
        seconds=_number(r"^Time taken for tests:\s+([\d.]+)", text),
        requests_per_s=_number(r"^Requests per second:\s+([\d.]+)", text),
        p50_ms=_number(r"^\s+50%\s+(\d+)", text),
        p99_ms=_number(r"^\s+99%\s+(\d+)", text),
    )


def run_ab(url: str, body: Path, json_length: int, headers: dict[str, str], clients: int, *,
           requests: int | None = None, seconds: float | None = None) -> AbResult:
    """Post `body` to url from `clients` concurrent connections, `requests` times or for `seconds`. A run by
    count ends when every request has been answered, so the server charged exactly what ab counted."""
    command = [ab_executable(), "-q", "-c", str(clients), "-p", str(body), "-T", "application/octet-stream",
               "-H", f"Inference-Header-Content-Length: {json_length}", "-s", "60"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if requests is not None:
        command += ["-n", str(max(requests, clients))]
    else:
        assert seconds is not None
        command += ["-t", str(seconds), "-n", "10000000"]
    run = subprocess.run([*command, url], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"ab failed ({run.returncode}): {run.stderr[-2000:]}{run.stdout[-2000:]}")
    return parse_report(run.stdout, clients)
