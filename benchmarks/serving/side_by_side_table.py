"""The cells of serving_side_by_side.py, the raw forward it compares with, and its table with the goals of
issue 23 checked against one run's figures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

DEFAULTS, DETECTION_OFF, KSERVE, FLOOR, RAW = ("ours, defaults", "ours, detection off", "KServe ModelServer",
                                               "uvicorn + uvloop, forward only", "raw forward in-process")


@dataclass(frozen=True)
class Cell:
    key: str
    batch: int  # inputs per request
    clients: int  # concurrent connections


CELLS = (Cell("batch100_c1", 100, 1), Cell("single_c64", 1, 64), Cell("single_c1", 1, 1))


def raw_forward(module: torch.nn.Module, images: np.ndarray, duration_s: float) -> dict[str, float]:
    """Forwards per second in this process (argmax included), for batches of 100, 64 and 1."""
    rates: dict[str, float] = {}
    for batch in (100, 64, 1):
        x = torch.from_numpy(images[:batch])
        done, started = 0, time.perf_counter()
        with torch.inference_mode():
            while time.perf_counter() - started < duration_s / 2:
                module(x).argmax(1).numpy()
                done += 1
        rates[f"batch{batch}_forwards_per_s"] = done / (time.perf_counter() - started)
    rates["batch100_labels_per_s"] = rates["batch100_forwards_per_s"] * 100
    rates["batch64_labels_per_s"] = rates["batch64_forwards_per_s"] * 64
    return rates


def _cells(row: dict[str, Any]) -> list[str]:
    b, many, one = (row[c.key] for c in CELLS)
    ledger = "" if "ledger_ok" not in b else (
        " ✓" if all(row[c.key]["ledger_ok"] for c in CELLS) else " ✗ charged ≠ answered")
    mean_ms = 1000 / one["requests_per_s"] if one["requests_per_s"] else float("nan")
    return [f"{b['labels_per_s']:,.0f}", f"{many['requests_per_s']:,.0f}",
            f"{one['requests_per_s']:,.0f}, p50 {one['p50_ms']:.0f} ms (mean {mean_ms:.2f} ms){ledger}"]


def goals(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(goal, the measurement, met) for each goal of issue 23."""
    ours, off, kserve, floor, raw = (results[k] for k in (DEFAULTS, DETECTION_OFF, KSERVE, FLOOR, RAW))
    many = ours["single_c64"]["requests_per_s"]
    checks = [
        ("1 input × 64 clients: ≥ 2× KServe", f"{many / kserve['single_c64']['requests_per_s']:.2f}×",
         many >= 2 * kserve["single_c64"]["requests_per_s"]),
        ("1 input × 64 clients: ≥ the floor", f"{many / floor['single_c64']['requests_per_s']:.2f}×",
         many >= floor["single_c64"]["requests_per_s"]),
        ("1 input, 1 client: p50 ≤ KServe's", f"{ours['single_c1']['p50_ms']:.0f} ms vs "
         f"{kserve['single_c1']['p50_ms']:.0f} ms (means {1000 / ours['single_c1']['requests_per_s']:.2f} vs "
         f"{1000 / kserve['single_c1']['requests_per_s']:.2f} ms)",
         ours["single_c1"]["p50_ms"] <= kserve["single_c1"]["p50_ms"]),
        ("batch 100, 1 client: ≥ 0.8 of the raw forward",
         f"{ours['batch100_c1']['labels_per_s'] / raw['batch100_labels_per_s']:.2f}",
         ours["batch100_c1"]["labels_per_s"] >= 0.8 * raw["batch100_labels_per_s"]),
    ]
    for cell in CELLS:
        ratio = ours[cell.key]["requests_per_s"] / off[cell.key]["requests_per_s"]
        checks.append((f"detection on ÷ off ≥ 0.9, {cell.key}", f"{ratio:.2f}", ratio >= 0.9))
    ledgers = [row[c.key]["ledger_ok"] for row in results.values() if isinstance(row, dict) and
               isinstance(row.get("single_c1"), dict) and "ledger_ok" in row["single_c1"] for c in CELLS]
    checks.append(("charged = answered in every cell of ours", f"{sum(ledgers)} of {len(ledgers)} cells",
                   all(ledgers)))
    return checks


def markdown_table(report: dict[str, Any]) -> str:
    results = report["results"]
    raw = results[RAW]
    lines = ["| server | batch 100, 1 client (labels/s) | 1 input × 64 clients (req/s) | 1 input, 1 client (req/s) |",
             "|---|---|---|---|",
             f"| {RAW} | {raw['batch100_labels_per_s']:,.0f} | (batch 64: {raw['batch64_labels_per_s']:,.0f} "
             f"labels/s) | {raw['batch1_forwards_per_s']:,.0f} |"]
    lines += [f"| {name} | " + " | ".join(_cells(row)) + " |" for name, row in results.items() if name != RAW]
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {goal} | {measured} | {'yes' if met else '**no**'} |" for goal, measured, met in goals(results)]
    before, after = report["load_before"], report["load_after"]
    lines += ["", f"Machine before: load average {before['loadavg_1m']:.2f}, {before['busy_share']:.0%} busy; "
                  f"after: {after['loadavg_1m']:.2f}, {after['busy_share']:.0%} busy "
                  f"({report['settings']['cpus']} CPUs, torch threads {report['settings']['torch_threads']}, "
                  f"{report['settings']['duration_s']:.0f} s per cell after {report['settings']['warmup_s']:.0f} s "
                  f"of warm-up; each cell the median of {report['settings'].get('rounds', 1)} round(s) over every "
                  "server in turn)."]
    waits = [float(c.get("waited_for_quiet_s", 0.0)) for name, row in results.items() if name != RAW
             for c in row.values() if isinstance(c, dict)]
    if waits:
        lines.append(f"Each cell began once the machine was idle (under 15% busy): waited {min(waits):.0f}-"
                     f"{max(waits):.0f} s (a detector finishing the previous cell's queries).")
    return "\n".join(lines)
