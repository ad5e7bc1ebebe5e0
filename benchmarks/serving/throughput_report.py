"""The throughput benchmark's report: its settings, the grid of cells, the best ratio per batch size, single-input
latency, the side-by-side comparisons, warnings about a disturbed machine, and the same as JSON."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table

from bbrange.shared.model_card import ModelCard
from bbrange.shared.wire import NPY_MEDIA_TYPE

from .comparison import Server, report_side_by_side
from .console import console, fmt
from .load import Cell, ClientKind, Totals


@dataclass
class Throughput:
    """What one run measured, and how: everything the report prints."""

    # how
    card: ModelCard
    module: torch.nn.Module
    torch_device: torch.device
    probe: dict[str, Any]  # the server's torch threads, event loop and HTTP parser
    torch_threads: int | None
    batch_delay_ms: float | None
    model: str
    onnx_name: str
    onnx_device: str
    redis_port: int
    batch_sizes: list[int]
    concurrency: list[int]
    duration_s: float
    warmup_s: float
    client: ClientKind
    many: int
    # what
    need: int
    mismatches: int
    usage: dict[str, Any]
    totals: Totals
    cells: list[Cell]
    raw: dict[int, float]
    raw_spread: dict[int, tuple[float, float]]
    lat: np.ndarray
    compared: dict[str, object]
    on: Server
    off: Server


def report(result: Throughput, json_out: Path | None) -> None:
    """Print the tables (and write the JSON when json_out)."""
    r = result
    card, module, torch_device, probe, torch_threads = r.card, r.module, r.torch_device, r.probe, r.torch_threads
    batch_delay_ms, model, onnx_name, redis_port = r.batch_delay_ms, r.model, r.onnx_name, r.redis_port
    batch_sizes, concurrency, duration_s, warmup_s, client = r.batch_sizes, r.concurrency, r.duration_s, r.warmup_s, r.client
    many, need, mismatches, usage, totals = r.many, r.need, r.mismatches, r.usage, r.totals
    cells, raw, raw_spread, lat, compared, on, off = r.cells, r.raw, r.raw_spread, r.lat, r.compared, r.on, r.off
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
                    f"(torch) and {onnx_name} (its ONNX export, ONNX Runtime {r.onnx_device}); the grid "
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
