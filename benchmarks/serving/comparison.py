"""The side-by-side comparisons of one run: dynamic batching on and off, ONNX Runtime and torch, our route and
the Open Inference Protocol's; and their table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np
import torch
from rich.table import Table

from bbrange.oracle.serving.backend_onnx import OnnxBackend
from bbrange.shared.wire import NPY_MEDIA_TYPE, encode_npy

from .console import console, fmt
from .forwards import raw_forward, raw_onnx_forward
from .generators import run_cell, sequential_latency
from .load import Cell, ClientKind, Totals, npy_labels, v2_body, v2_labels


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
