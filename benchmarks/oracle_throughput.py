"""Oracle throughput: labels per second served over HTTP (binary .npy) against the model's raw forward.

Starts its own redis-server and `bbrange oracle serve` on free loopback ports, creates one client with
a budget for the whole run, then for each batch size measures

  * the raw in-process forward (torch.inference_mode, argmax included, same torch threads as the server),
  * labels/s served over HTTP with 1 and 8 concurrent clients (each cell: warm-up, then a fixed duration),

and finally the latency of single-input requests (1 client, sequential). Everything it started is stopped
on exit, error or Ctrl-C.

    .venv/bin/python benchmarks/oracle_throughput.py                   # defaults: mnist, 10 s per cell
    .venv/bin/python benchmarks/oracle_throughput.py --duration-s 3    # a quick look

The load generator runs on the same machine, so it takes CPU from the server; its CPU use is measured
and printed beside each cell.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from bbrange.oracle.models.onnx_export import torch_to_onnx
from bbrange.oracle.models.onnx_import import ImportSpec, import_onnx
from bbrange.oracle.serving.backend_onnx import OnnxBackend
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import as_batch, resolve_device
from bbrange.shared.model_card import load_model, read_card
from bbrange.shared.processes import Process, free_port, http_ok, redis_pong, start_process
from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
console = Console(width=None if sys.stdout.isatty() else 170)
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


class ClientKind(StrEnum):
    asyncio = "asyncio"
    threads = "threads"


# --------------------------------------------------------------------------- processes


def stop(process: Process) -> None:
    """SIGTERM the child's process group, SIGKILL it after 10 s; always reap it (a grandchild too)."""
    if process.stop(grace_s=10.0, group=True):
        console.print(f"[yellow]{process.name} did not stop within 10 s; it was killed[/]")


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


# --------------------------------------------------------------------------- measurements


@dataclass
class Cell:
    batch: int
    concurrency: int
    seconds: float
    requests: int
    labels: int
    latencies_s: list[float] = field(repr=False)
    cpu: dict[str, float]
    server_request_ms: float  # mean time inside the predict handler (server's histogram)
    server_forward_ms: float  # mean model forward (server's histogram)
    forward_busy: float  # fraction of the wall time the server spent in model forwards

    @property
    def labels_per_s(self) -> float:
        return self.labels / self.seconds

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) * 1e3 if self.latencies_s else float("nan")


@dataclass
class Totals:
    labels: int = 0  # every label answered, warm-ups included: must equal what the ledger charged
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self.lock:
            self.labels += n


def npy_labels(response: httpx.Response) -> np.ndarray:
    return decode_npy(response.content)


def v2_labels(response: httpx.Response) -> np.ndarray:
    """The INT64 labels of an Open Inference Protocol response with the binary output after its JSON header."""
    split = int(response.headers["Inference-Header-Content-Length"])
    return np.frombuffer(response.content[split:], dtype="<i8").astype(np.int64)


def v2_body(x: np.ndarray, input_name: str) -> tuple[bytes, int]:
    """An infer request for this batch, tensor bytes after the JSON (tritonclient's default), and the JSON length."""
    head = json.dumps({"inputs": [{"name": input_name, "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "outputs": [{"name": "label", "parameters": {"binary_data": True}}]}).encode()
    return head + np.ascontiguousarray(x, dtype="<f4").tobytes(), len(head)


class Load:
    """Shared state of one cell's workers: counters only move while `measuring` is set."""

    def __init__(self, batch: int, totals: Totals,
                 decode: Callable[[httpx.Response], np.ndarray] = npy_labels) -> None:
        self.decode = decode
        self.batch = batch
        self.totals = totals
        self.measuring = False
        self.stop = False
        self.requests = 0
        self.labels = 0
        self.latencies: list[float] = []
        self.lock = threading.Lock()

    def record(self, response: httpx.Response, seconds: float) -> None:
        if response.status_code != 200:
            raise RuntimeError(f"predict answered {response.status_code}: {response.text[:300]}")
        labels = self.decode(response)
        if labels.shape != (self.batch,) or labels.dtype != np.int64:
            raise RuntimeError(f"expected {self.batch} int64 labels, got {labels.dtype} {labels.shape}")
        self.totals.add(self.batch)
        if self.measuring:
            with self.lock:
                self.requests += 1
                self.labels += self.batch
                self.latencies.append(seconds)


def run_cell(kind: ClientKind, base_url: str, headers: dict[str, str], path: str, bodies: list[bytes], batch: int,
             concurrency: int, warmup_s: float, duration_s: float, server_pid: int, redis_pid: int,
             model: str, totals: Totals, decode: Callable[[httpx.Response], np.ndarray] = npy_labels) -> Cell:
    load = Load(batch, totals, decode)
    marks: dict[str, object] = {}
    with httpx.Client(base_url=base_url, timeout=30.0) as side:  # for /metrics, off the load's connections

        def begin() -> None:
            marks["m0"] = server_metrics(side, model)
            marks["c0"] = CpuSnapshot.take(server_pid, redis_pid)
            load.measuring = True

        def end() -> None:
            load.measuring = False
            marks["c1"] = CpuSnapshot.take(server_pid, redis_pid)
            marks["m1"] = server_metrics(side, model)

        if kind is ClientKind.asyncio:
            asyncio.run(_async_load(base_url, headers, path, bodies, concurrency, warmup_s, duration_s, load,
                                    begin, end))
        else:
            _threaded_load(base_url, headers, path, bodies, concurrency, warmup_s, duration_s, load, begin, end)

    c0, c1 = marks["c0"], marks["c1"]
    m0, m1 = marks["m0"], marks["m1"]
    seconds = c1.wall - c0.wall
    n_req = max(1.0, m1["request_count"] - m0["request_count"])
    n_fwd = max(1.0, m1["inference_count"] - m0["inference_count"])
    return Cell(
        batch=batch, concurrency=concurrency, seconds=seconds, requests=load.requests, labels=load.labels,
        latencies_s=load.latencies, cpu=cpu_shares(c0, c1),
        server_request_ms=1e3 * (m1["request_sum"] - m0["request_sum"]) / n_req,
        server_forward_ms=1e3 * (m1["inference_sum"] - m0["inference_sum"]) / n_fwd,
        forward_busy=(m1["inference_sum"] - m0["inference_sum"]) / seconds,
    )


async def _async_load(base_url: str, headers: dict[str, str], path: str, bodies: list[bytes], concurrency: int,
                      warmup_s: float, duration_s: float, load: Load, begin: Callable[[], None],
                      end: Callable[[], None]) -> None:
    """One event loop in one thread, `concurrency` tasks sharing a pool of as many keep-alive connections."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60.0) as client:

        async def worker(i: int) -> None:
            j = i
            while not load.stop:
                body = bodies[j % len(bodies)]
                j += 1
                started = time.perf_counter()
                response = await client.post(path, content=body)
                load.record(response, time.perf_counter() - started)

        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]

        async def hold(seconds: float) -> None:
            done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # a worker only finishes early by failing: raise its error

        try:
            await hold(warmup_s)
            begin()
            await hold(duration_s)
            end()
        finally:
            load.stop = True
            await asyncio.gather(*tasks, return_exceptions=True)


def _threaded_load(base_url: str, headers: dict[str, str], path: str, bodies: list[bytes], concurrency: int,
                   warmup_s: float, duration_s: float, load: Load, begin: Callable[[], None],
                   end: Callable[[], None]) -> None:
    """`concurrency` threads, each with its own httpx.Client and keep-alive connection."""
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as client:
                j = i
                while not load.stop:
                    body = bodies[j % len(bodies)]
                    j += 1
                    started = time.perf_counter()
                    response = client.post(path, content=body)
                    load.record(response, time.perf_counter() - started)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
            load.stop = True

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()

    def hold(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not errors:
            time.sleep(0.05)
        if errors:
            raise errors[0]

    try:
        hold(warmup_s)
        begin()
        hold(duration_s)
        end()
    finally:
        load.stop = True
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


def raw_forward(module: torch.nn.Module, x: np.ndarray, device: torch.device, warmup_s: float,
                duration_s: float) -> float:
    """Labels/s of the in-process forward on one batch, as the server runs it (argmax and copy back included)."""
    def step() -> np.ndarray:
        return module(as_batch(x, device)).argmax(1).cpu().numpy()

    with torch.inference_mode():
        deadline = time.perf_counter() + warmup_s
        while time.perf_counter() < deadline:
            step()
        n = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < duration_s:
            step()
            n += 1
    return n * x.shape[0] / elapsed


def sequential_latency(base_url: str, headers: dict[str, str], path: str, bodies: list[bytes], warmup_s: float,
                       duration_s: float, totals: Totals) -> np.ndarray:
    """Latency of single-input requests, one at a time over one keep-alive connection (sync httpx)."""
    load = Load(1, totals)
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        for phase, seconds in (("warmup", warmup_s), ("measure", duration_s)):
            load.measuring = phase == "measure"
            deadline = time.perf_counter() + seconds
            j = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = client.post(path, content=bodies[j % len(bodies)])
                load.record(response, time.perf_counter() - started)
                j += 1
    return np.asarray(load.latencies) * 1e3


def raw_onnx_forward(backend: OnnxBackend, x: np.ndarray, warmup_s: float, duration_s: float) -> float:
    """Labels/s of ONNX Runtime's forward on one batch, as the server runs it (preprocessing and argmax included)."""
    deadline = time.perf_counter() + warmup_s
    while time.perf_counter() < deadline:
        backend.labels(x)
    n = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < duration_s:
        backend.labels(x)
        n += 1
    return n * x.shape[0] / elapsed


@dataclass
class Server:
    name: str
    url: str
    pid: int


def side_by_side(kind: ClientKind, on: Server, off: Server, redis_pid: int, api_key: str, model: str, onnx_name: str,
                 module: torch.nn.Module, onnx_backend: OnnxBackend, images: np.ndarray, device: torch.device,
                 many: int, warmup_s: float, duration_s: float, totals: Totals) -> dict[str, object]:
    """The issue's comparisons, in one run on one machine: batching on and off, ONNX Runtime and torch, our
    route and the Open Inference Protocol's."""
    auth = {"Authorization": f"Bearer {api_key}"}
    npy = {**auth, "Content-Type": NPY_MEDIA_TYPE, "Accept": NPY_MEDIA_TYPE}
    ours = {b: [encode_npy(images[i * b:(i + 1) * b]) for i in range(4)] for b in (1, 100)}
    v2 = {b: [v2_body(images[i * b:(i + 1) * b], "input") for i in range(4)] for b in (1, 100)}
    raw: dict[str, float] = {}
    for b in (1, many, 100):
        console.print(f"[dim]side by side: raw torch and ONNX Runtime forwards, batch {b} …[/]")
        raw[f"torch {b}"] = raw_forward(module, images[:b], device, warmup_s, duration_s / 2)
        raw[f"onnxruntime {b}"] = raw_onnx_forward(onnx_backend, images[:b], warmup_s, duration_s / 2)

    cells: dict[str, Cell] = {}

    def cell(key: str, server: Server, path: str, headers: dict[str, str], bodies: list[bytes], batch: int,
             clients: int, decode: Callable[[httpx.Response], np.ndarray] = npy_labels) -> None:
        console.print(f"[dim]side by side: {key} …[/]")
        cells[key] = run_cell(kind, server.url, headers, path, bodies, batch, clients, warmup_s, duration_s,
                              server.pid, redis_pid, path.split("/")[3], totals, decode)

    own, own_onnx = f"/v1/models/{model}/predict", f"/v1/models/{onnx_name}/predict"
    infer = f"/v2/models/{model}/infer"
    v2_headers = {b: {**auth, "Inference-Header-Content-Length": str(v2[b][0][1])} for b in v2}
    for server in (on, off):
        cell(f"own route, batch 100, 1 client, {server.name}", server, own, npy, ours[100], 100, 1)
        cell(f"own route, batch 1, {many} clients, {server.name}", server, own, npy, ours[1], 1, many)
    cell(f"V2 route, batch 100, 1 client, {on.name}", on, infer, v2_headers[100], [b for b, _ in v2[100]], 100, 1,
         v2_labels)
    cell(f"V2 route, batch 1, {many} clients, {on.name}", on, infer, v2_headers[1], [b for b, _ in v2[1]], 1, many,
         v2_labels)
    cell(f"ONNX model, own route, batch 100, 1 client, {on.name}", on, own_onnx, npy, ours[100], 100, 1)
    cell(f"ONNX model, own route, batch 1, {many} clients, {on.name}", on, own_onnx, npy, ours[1], 1, many)
    latency = {}
    for server in (on, off):
        console.print(f"[dim]side by side: single-input latency, 1 client, sequential, {server.name} …[/]")
        latency[server.name] = sequential_latency(server.url, npy, own, ours[1], warmup_s, duration_s, totals)
    return {"raw": raw, "cells": cells, "latency": latency}


def report_side_by_side(result: dict[str, object], on: str, off: str, many: int) -> dict[str, object]:
    raw: dict[str, float] = result["raw"]  # type: ignore[assignment]
    cells: dict[str, Cell] = result["cells"]  # type: ignore[assignment]
    latency: dict[str, np.ndarray] = result["latency"]  # type: ignore[assignment]
    table = Table(title="side by side (one run): served labels/s, latency under load, and the reference each is "
                        "compared with", title_justify="left")
    for name, justify in [("measurement", "left"), ("labels/s", "right"), ("p50 ms", "right"), ("p99 ms", "right"),
                          ("compared with", "left"), ("ratio", "right"), ("req/forward", "right"),
                          ("CPU server", "right"), ("CPU client", "right"), ("CPU other", "right")]:
        table.add_column(name, justify=justify)
    rows: list[dict[str, object]] = []
    for key, c in cells.items():
        batch = c.batch if c.batch > 1 else many
        reference = f"raw torch batch {batch}"
        ratio = c.labels_per_s / raw[f"torch {batch}"]
        if key.startswith("ONNX model"):
            reference, ratio = f"raw ONNX Runtime batch {batch}", c.labels_per_s / raw[f"onnxruntime {batch}"]
        table.add_row(key, fmt(c.labels_per_s), fmt(c.pct(50), 2), fmt(c.pct(99), 2), reference, f"{ratio:.2f}",
                      f"{c.requests_per_s * c.server_forward_ms / 1e3 / max(c.forward_busy, 1e-9):.2f}"
                      if c.forward_busy else "-", fmt(c.cpu["server"]), fmt(c.cpu["client"]), fmt(c.cpu["other"]))
        rows.append({"measurement": key, "labels_per_s": c.labels_per_s, "p50_ms": c.pct(50), "p99_ms": c.pct(99),
                     "reference": reference, "ratio": ratio, "requests_per_forward": c.requests_per_s * c.seconds
                     / max(1.0, c.forward_busy * c.seconds / max(c.server_forward_ms / 1e3, 1e-9)),
                     "cpu_pct": c.cpu})
    for name, lat in latency.items():
        table.add_row(f"single input, 1 client, sequential, {name}", fmt(len(lat) / max(lat.sum() / 1e3, 1e-9)),
                      fmt(float(np.percentile(lat, 50)), 2), fmt(float(np.percentile(lat, 99)), 2), *[""] * 6)
        rows.append({"measurement": f"single input, 1 client, sequential, {name}",
                     "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))})
    console.print(table)
    forwards = Table(title="raw in-process forwards (labels/s): ONNX Runtime vs torch, same model, same inputs",
                     title_justify="left")
    for name in ("batch", "torch", "ONNX Runtime", "ONNX Runtime ÷ torch"):
        forwards.add_column(name, justify="right")
    for b in sorted({int(k.split()[1]) for k in raw}):
        t, o = raw[f"torch {b}"], raw[f"onnxruntime {b}"]
        forwards.add_row(str(b), fmt(t), fmt(o), f"{o / t:.2f}")
    console.print(forwards)
    goal1 = cells[f"own route, batch 100, 1 client, {on}"].labels_per_s / raw["torch 100"]
    goal2 = cells[f"own route, batch 1, {many} clients, {on}"].labels_per_s / raw[f"torch {many}"]
    without = cells[f"own route, batch 1, {many} clients, {off}"].labels_per_s / raw[f"torch {many}"]
    busy = max(c.cpu["other"] for c in cells.values())
    for text, value, goal in ((f"served ÷ raw at batch 100, 1 client ({on})", goal1, 0.7),
                              (f"single-input requests, {many} clients, ÷ raw batch {many} ({on}; {off}: "
                               f"{without:.2f})", goal2, 0.5)):
        met = value >= goal
        console.print(f"goal {text} ≥ {goal}: [{'green' if met else 'red'}]{value:.2f} — {'met' if met else 'NOT met'}"
                      "[/]" + (f" [yellow](other processes used up to {busy:.0f} % of a core: disturbed)[/]"
                               if busy > 20 else ""))
    return {"raw_labels_per_s": raw, "rows": rows, "goal_batch100": goal1, "goal_single_many": goal2,
            "single_many_without_batching": without, "max_cpu_other_pct": busy}


# --------------------------------------------------------------------------- the run


def server_probe(env: dict[str, str]) -> dict[str, object]:
    """What the server process will see, from a child with the server's environment: torch threads and
    which event loop / HTTP parser uvicorn's "auto" will pick."""
    code = (
        "import importlib.util as u, json, torch, uvicorn;"
        "print(json.dumps({'threads': torch.get_num_threads(), 'interop': torch.get_num_interop_threads(),"
        "'uvloop': u.find_spec('uvloop') is not None, 'httptools': u.find_spec('httptools') is not None,"
        "'uvicorn': uvicorn.__version__}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bbrange_executable() -> str:
    beside = Path(sys.executable).with_name("bbrange")
    if beside.exists():
        return str(beside)
    found = shutil.which("bbrange")
    if found is None:
        raise RuntimeError("cannot find the bbrange command: run this with the project's venv python")
    return found


def default_data_dir() -> Path | None:
    if os.environ.get("BBRANGE_DATA_DIR"):
        return Path(os.environ["BBRANGE_DATA_DIR"])
    beside = ROOT.parent / "shared" / "datasets"
    return beside if beside.is_dir() else None


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so the same cleanup runs as for Ctrl-C."""
    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fmt(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


@app.command()
def main(
    model_dir: Annotated[Path, typer.Option(
        "--model-dir", help="Where the model cards and weights are.")] = ROOT / "models",
    model: Annotated[str, typer.Option("--model", help="Model to serve and measure.")] = "mnist",
    duration_s: Annotated[float, typer.Option("--duration-s", min=0.5, help="Measured seconds per cell.")] = 10.0,
    warmup_s: Annotated[float, typer.Option("--warmup-s", min=0.0, help="Warm-up seconds before each cell.")] = 2.0,
    device: Annotated[str, typer.Option(
        "--device", help="auto, cpu or cuda (server and in-process alike).")] = "auto",
    batch_sizes: Annotated[list[int], typer.Option(
        "--batch", min=1, max=1024, help="Batch sizes (repeatable).")] = [1, 100, 1000],  # noqa: B006
    concurrency: Annotated[list[int], typer.Option(
        "--concurrency", min=1, help="Concurrent clients (repeatable).")] = [1, 8],  # noqa: B006
    client: Annotated[ClientKind, typer.Option(
        "--client", help="Load generator: one asyncio loop, or one thread per client.")] = ClientKind.asyncio,
    torch_threads: Annotated[int | None, typer.Option(
        "--torch-threads", min=1,
        help="Set OMP_NUM_THREADS for the server and the in-process forward (default: torch's own default).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Dataset directory (default: $BBRANGE_DATA_DIR, else ../shared/datasets).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results here as JSON.")] = None,
    many: Annotated[int, typer.Option(
        "--many", min=2, help="Concurrent single-input clients in the side-by-side comparison.")] = 64,
    batch_delay_ms: Annotated[float | None, typer.Option(
        "--batch-delay-ms", help="BBRANGE_BATCH_MAX_DELAY_MS of the batching server (default: its default).")] = None,
    startup_timeout_s: Annotated[float, typer.Option(
        "--startup-timeout-s", help="How long to wait for /readyz.")] = 120.0,
) -> None:
    """Measure the oracle's served labels/s against the raw forward, and single-input latency."""
    model_dir = model_dir.resolve()
    card_file = model_dir / f"{model}.json"
    if not card_file.exists():
        raise typer.BadParameter(f"no model card {card_file}; train one with `bbrange oracle train`",
                                 param_hint="--model")
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        console.print("[red]redis-server is not on PATH[/]")
        raise typer.Exit(2)

    try:
        _run(model_dir, card_file, redis_server, model, duration_s, warmup_s, device, batch_sizes, concurrency,
             client, torch_threads, data_dir, json_out, startup_timeout_s, many, batch_delay_ms)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the oracle and redis-server were stopped[/]")
        raise typer.Exit(130) from None


def _run(model_dir: Path, card_file: Path, redis_server: str, model: str, duration_s: float, warmup_s: float,
         device: str, batch_sizes: list[int], concurrency: list[int], client: ClientKind,
         torch_threads: int | None, data_dir: Path | None, json_out: Path | None,
         startup_timeout_s: float, many: int, batch_delay_ms: float | None) -> None:
    with terminate_on_sigterm(), contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bbrange-bench-")))

        # ---- the model in-process, and the inputs (MNIST/GTSRB test images, the card's dataset)
        torch_device = resolve_device(device)
        card = read_card(card_file)
        dataset = load_dataset(card.dataset, "test", data_dir or default_data_dir())
        need = max(batch_sizes)
        images = np.ascontiguousarray(dataset.x[: max(need * 4, 400, many)], dtype=np.float32)
        bodies = {b: [encode_npy(images[(i * b) % (len(images) - b + 1):][:b]) for i in range(4)] for b in batch_sizes}

        server_env = dict(os.environ)
        if torch_threads is not None:
            server_env["OMP_NUM_THREADS"] = server_env["MKL_NUM_THREADS"] = str(torch_threads)
        probe = server_probe(server_env)
        torch.set_num_threads(int(probe["threads"]))  # the server's own count, whatever set it
        module, card = load_model(card_file, torch_device)

        # ---- the same model exported as ONNX and imported beside it, for ONNX Runtime vs torch
        served_dir = workdir / "models"
        served_dir.mkdir()
        for f in (card_file, model_dir / card.weights_file):
            shutil.copy(f, served_dir / f.name)
        onnx_name = f"{model}-onnx"
        console.print(f"[dim]exporting {model} as ONNX and importing it as {onnx_name} …[/]")
        cpu_module, _ = load_model(card_file, torch.device("cpu"))
        import_onnx(torch_to_onnx(cpu_module, card.input_shape), ImportSpec(name=onnx_name, dataset=card.dataset),
                    served_dir, data_dir=data_dir or default_data_dir(), device=torch_device)
        onnx_backend, _ = OnnxBackend.open(served_dir / f"{onnx_name}.json", torch_device)

        # ---- redis and the oracle, each on a free loopback port
        redis_port = free_port()
        # Each child in its own process group, which stop() signals whole; and it dies with the benchmark
        # even if the benchmark is killed outright (SIGKILL).
        redis_proc = start_process(
            "redis-server", [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir), "--protected-mode", "yes"],
            workdir / "redis.log", cwd=workdir, own_session=True, die_with_parent=True)
        stack.callback(stop, redis_proc)
        redis_proc.wait_ready(lambda: redis_pong(redis_port, timeout_s=1.0), timeout_s=15.0)

        admin_token = secrets.token_urlsafe(24)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server_env.update(BBRANGE_ADMIN_TOKEN=admin_token, BBRANGE_REDIS_PREFIX=f"bench:{secrets.token_hex(4)}")
        server_cmd = [bbrange_executable(), "oracle", "serve", "--host", "127.0.0.1", "--port", str(port),
                      "--model-dir", str(served_dir), "--redis-url", f"redis://127.0.0.1:{redis_port}/0",
                      "--model", model, "--model", onnx_name, "--device", device, "--log-level", "warning"]
        if batch_delay_ms is not None:
            server_env["BBRANGE_BATCH_MAX_DELAY_MS"] = str(batch_delay_ms)
        # The same server without dynamic batching, on the same Redis and key prefix (one client for both).
        port_off = free_port()
        off_cmd = [*server_cmd[:server_cmd.index("--port") + 1], str(port_off),
                   *server_cmd[server_cmd.index("--port") + 2:]]
        off_proc = start_process("the oracle without batching", off_cmd, workdir / "oracle-off.log",
                                 env={**server_env, "BBRANGE_DYNAMIC_BATCHING": "false"}, cwd=ROOT, own_session=True,
                                 die_with_parent=True)
        stack.callback(stop, off_proc)
        console.print(f"[dim]starting redis-server :{redis_port} and the oracle :{port} …[/]")
        server_proc = start_process("the oracle", server_cmd, workdir / "oracle.log", env=server_env, cwd=ROOT,
                                    own_session=True, die_with_parent=True)
        stack.callback(stop, server_proc)

        try:
            server_proc.wait_ready(lambda: http_ok(f"{base_url}/readyz", timeout_s=2.0), timeout_s=startup_timeout_s)
            off_proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port_off}/readyz", timeout_s=2.0),
                                timeout_s=startup_timeout_s)
            created = httpx.post(f"{base_url}/v1/admin/clients", json={"name": "throughput-bench", "budget": 10**12},
                                 headers={"Authorization": f"Bearer {admin_token}"}, timeout=10.0)
            created.raise_for_status()
            api_key = created.json()["api_key"]
            headers = {"Authorization": f"Bearer {api_key}", "Content-Type": NPY_MEDIA_TYPE, "Accept": NPY_MEDIA_TYPE}
            path = f"/v1/models/{model}/predict"
            totals = Totals()

            # ---- served labels must be the in-process labels
            check = images[:need]
            r = httpx.post(base_url + path, content=encode_npy(check), headers=headers, timeout=60.0)
            r.raise_for_status()
            totals.add(need)
            with torch.inference_mode():
                local = module(as_batch(check, torch_device)).argmax(1).cpu().numpy()
            mismatches = int((decode_npy(r.content) != local).sum())

            # ---- per batch size: the served cells bracketed by two raw halves (before and after), so the
            # ratio compares figures taken at the same time and drift in the machine's speed hurts less
            raw: dict[int, float] = {}
            raw_spread: dict[int, tuple[float, float]] = {}
            cells: list[Cell] = []
            for b in batch_sizes:
                console.print(f"[dim]batch {b}: raw forward …[/]")
                before = raw_forward(module, images[:b], torch_device, warmup_s, duration_s / 2)
                for c in concurrency:
                    console.print(f"[dim]batch {b}: {c} client(s) over HTTP …[/]")
                    cells.append(run_cell(client, base_url, headers, path, bodies[b], b, c, warmup_s, duration_s,
                                          server_proc.pid, redis_proc.pid, model, totals))
                console.print(f"[dim]batch {b}: raw forward again …[/]")
                after = raw_forward(module, images[:b], torch_device, warmup_s, duration_s / 2)
                raw[b], raw_spread[b] = (before + after) / 2, (before, after)

            console.print("[dim]single-input latency, 1 client, sequential …[/]")
            lat = sequential_latency(base_url, headers, path, bodies[1] if 1 in bodies else [encode_npy(images[:1])],
                                     warmup_s, duration_s, totals)

            on = Server("batching on", base_url, server_proc.pid)
            off = Server("batching off", f"http://127.0.0.1:{port_off}", off_proc.pid)
            compared = side_by_side(client, on, off, redis_proc.pid, api_key, model, onnx_name, module, onnx_backend,
                                    images, torch_device, many, warmup_s, duration_s, totals)

            usage = httpx.get(f"{base_url}/v1/usage", headers={"Authorization": f"Bearer {api_key}"},
                              timeout=10.0).json()
        except Exception:
            console.print(f"[red]oracle log (tail):[/]\n{server_proc.log_tail()}")
            raise

        # ---- report
        cpus = os.cpu_count() or 0
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
        params = sum(p.numel() for p in module.parameters())
        settings = Table(title="oracle throughput: settings", show_header=False, title_justify="left")
        settings.add_column(style="bold")
        settings.add_column()
        rows = [
            ("model", f"{card.name}: {card.architecture} on {card.dataset}, input {tuple(card.input_shape)}, "
                      f"{params:,} parameters"),
            ("device", f"{torch_device} (server and in-process)"),
            ("torch", f"{torch.__version__}; {probe['threads']} intra-op threads in the server and in-process"
                      f"{' (OMP_NUM_THREADS=' + str(torch_threads) + ')' if torch_threads else ' (torch default)'}"),
            ("CPU", f"{cpus} logical CPUs ({usable} usable), {platform.processor() or platform.machine()}"),
            ("server", f"bbrange oracle serve, uvicorn {probe['uvicorn']} 1 worker, "
                       f"loop {'uvloop' if probe['uvloop'] else 'asyncio'}, "
                       f"http {'httptools' if probe['httptools'] else 'h11'}"),
            ("servers", f"two: dynamic batching on (BBRANGE_BATCH_MAX_DELAY_MS="
                        f"{batch_delay_ms if batch_delay_ms is not None else 'default'}) and off; both serve {model} "
                        f"(torch) and {onnx_name} (its ONNX export, ONNX Runtime {onnx_backend.device}); the grid "
                        "below is the batching server"),
            ("budget store", f"own redis-server on 127.0.0.1:{redis_port} (no persistence)"),
            ("batch sizes", ", ".join(map(str, batch_sizes))),
            ("concurrency", ", ".join(map(str, concurrency)) + " client(s)"),
            ("duration", f"{duration_s:g} s measured per cell after {warmup_s:g} s warm-up; raw forward: "
                         f"{duration_s / 2:g} s before and {duration_s / 2:g} s after each batch size's cells, "
                         "averaged"),
            ("encoding", f"binary: {NPY_MEDIA_TYPE} float32 request, int64 .npy labels back "
                         f"(Accept: {NPY_MEDIA_TYPE})"),
            ("load generator", ("httpx.AsyncClient, one asyncio loop in one thread, a pool of N keep-alive connections"
                                if client is ClientKind.asyncio else
                                "one thread per client, each with its own httpx.Client and keep-alive connection")),
            ("client shares CPU", f"YES: the load generator, the oracle and redis all run on these {usable} CPUs "
                                  "over loopback, so served figures are a lower bound on a dedicated server"),
            ("correctness", f"served labels == in-process labels for {need} images: "
                            + ("yes" if mismatches == 0 else f"NO, {mismatches} differ")),
            ("metering", f"ledger charged {usage['used']:,} inputs, benchmark got {totals.labels:,} labels: "
                         + ("match" if usage["used"] == totals.labels else "MISMATCH")),
        ]
        for k, v in rows:
            settings.add_row(k, v)
        console.print(settings)

        table = Table(title="throughput (labels/s) and latency under load; CPU in % of one core",
                      title_justify="left")
        for name, justify in [("batch", "right"), ("clients", "right"), ("raw labels/s", "right"),
                              ("served labels/s", "right"), ("served ÷ raw", "right"), ("req/s", "right"),
                              ("p50 ms", "right"), ("p99 ms", "right"), ("srv handler ms", "right"),
                              ("srv forward ms", "right"), ("fwd busy", "right"), ("CPU server", "right"),
                              ("CPU client", "right"), ("CPU redis", "right"), ("CPU other", "right")]:
            table.add_column(name, justify=justify)
        for cell in cells:
            ratio = cell.labels_per_s / raw[cell.batch]
            style = "green" if ratio >= 0.7 else "red"
            table.add_row(
                str(cell.batch), str(cell.concurrency), fmt(raw[cell.batch]), fmt(cell.labels_per_s),
                f"[{style}]{ratio:.2f}[/]", fmt(cell.requests_per_s), fmt(cell.pct(50), 2), fmt(cell.pct(99), 2),
                fmt(cell.server_request_ms, 2), fmt(cell.server_forward_ms, 2), f"{cell.forward_busy:.0%}",
                fmt(cell.cpu["server"]), fmt(cell.cpu["client"]), fmt(cell.cpu["redis"]), fmt(cell.cpu["other"]),
            )
        console.print(table)
        console.print(
            "[dim]raw: in-process forward + argmax on one batch, back to back (mean of before and after the cells). "
            "srv handler/forward: the oracle's own "
            "histograms (handler = auth, body, decode, validation, charge, forward, encode; forward = model + argmax). "
            "fwd busy: share of wall time the server spent in forwards. CPU other: the rest of the machine "
            "(background jobs).[/]"
        )

        summary = Table(title="served ÷ raw per batch size (best over concurrency)", title_justify="left")
        for name in ("batch", "raw labels/s", "best served labels/s", "clients", "served ÷ raw"):
            summary.add_column(name, justify="right")
        best_ratio: dict[int, float] = {}
        for b in batch_sizes:
            best = max((c for c in cells if c.batch == b), key=lambda c: c.labels_per_s)
            best_ratio[b] = best.labels_per_s / raw[b]
            summary.add_row(str(b), fmt(raw[b]), fmt(best.labels_per_s), str(best.concurrency),
                            f"[{'green' if best_ratio[b] >= 0.7 else 'red'}]{best_ratio[b]:.2f}[/]")
        console.print(summary)

        latency = Table(title="single-input latency: 1 client, sequential, sync httpx.Client, keep-alive",
                        title_justify="left")
        for name in ("requests", "req/s", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms"):
            latency.add_column(name, justify="right")
        latency.add_row(fmt(len(lat)), fmt(len(lat) / duration_s), fmt(lat.mean(), 2),
                        *(fmt(float(np.percentile(lat, q)), 2) for q in (50, 90, 99)), fmt(lat.max(), 2))
        console.print(latency)
        side = report_side_by_side(compared, on.name, off.name, many)

        drift = {b: abs(x - y) / ((x + y) / 2) for b, (x, y) in raw_spread.items()}
        for b, d in drift.items():
            if d > 0.15:
                x, y = raw_spread[b]
                console.print(f"[yellow]warning: raw forward at batch {b} moved {d:.0%} during its cells "
                              f"({fmt(x)} then {fmt(y)} labels/s): the machine's speed drifted[/]")
        busy = [c for c in cells if c.cpu["other"] > 20.0]
        if busy:
            worst = max(c.cpu["other"] for c in busy)
            console.print(f"[yellow]warning: other processes used up to {worst:.0f} % of a core during {len(busy)} of "
                          f"{len(cells)} cells (CPU other): these figures are disturbed; rerun on a quiet machine[/]")
        if 100 in best_ratio:
            met = best_ratio[100] >= 0.7
            console.print(f"goal served ÷ raw ≥ 0.7 at batch 100: [{'green' if met else 'red'}]"
                          f"{best_ratio[100]:.2f} — {'met' if met else 'NOT met'}[/]"
                          + (" [yellow](disturbed by other processes: not a valid figure)[/]" if busy else ""))

        if json_out is not None:
            json_out.write_text(json.dumps({
                "settings": dict(rows), "side_by_side": side, "raw_labels_per_s": raw,
                "raw_before_after": {b: list(v) for b, v in raw_spread.items()},
                "cells": [{**{k: v for k, v in asdict(c).items() if k != "latencies_s"},
                           "labels_per_s": c.labels_per_s, "requests_per_s": c.requests_per_s,
                           "p50_ms": c.pct(50), "p99_ms": c.pct(99), "served_over_raw": c.labels_per_s / raw[c.batch]}
                          for c in cells],
                "latency_ms": {"n": len(lat), "mean": float(lat.mean()), "p50": float(np.percentile(lat, 50)),
                               "p90": float(np.percentile(lat, 90)), "p99": float(np.percentile(lat, 99)),
                               "max": float(lat.max())},
            }, indent=2) + "\n")


if __name__ == "__main__":
    app()
