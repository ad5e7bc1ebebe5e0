"""The report of benchmarks/detection_goals.py: its cells, benign rows, timings and the markdown tables."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

KEYS = (1, 100)
GOAL_QUERIES = 100  # flagged at a query before this one
GOAL_MATCHED = 0.001  # benign queries matched, at most
DETECTORS = ("PRADA", "Blacklight", "both")


@dataclass
class Cell:
    dataset: str
    stream: str
    queries: int
    keys: int
    detector: str
    first_flag: int | None  # the stream's query (1-based) at which the first key was flagged
    flagged: int  # keys flagged by the stream's end
    linked: int | None  # keys Blacklight linked to at least one other key (None: 1 key, or PRADA: it links none)
    groups: int | None  # the groups Blacklight's links make of the keys that sent queries
    goal: bool
    verdict: str


@dataclass
class BenignRow:
    dataset: str
    images: int
    clients: int
    queries: int
    detector: str
    matched: float | None  # share of queries matched (None: PRADA has no per-query match)
    flagged: int
    note: str
    goal: bool | None


@dataclass
class Report:
    settings: dict[str, object]
    cells: list[Cell] = field(default_factory=list)
    benign: list[BenignRow] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def say(text: str) -> None:
    print(text, flush=True)


class Timer:
    def __init__(self, report: Report, name: str) -> None:
        self.report, self.name = report, name

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.report.seconds[self.name] = round(time.perf_counter() - self.started, 1)
        say(f"    [{self.name}: {self.report.seconds[self.name]:.1f} s]")


def verdict(first: int | None, keys: int, linked: int | None) -> tuple[bool, str]:
    if first is None:
        return False, "NO: not flagged"
    if first >= GOAL_QUERIES:
        return False, f"NO: flagged at query {first:,}"
    if keys > 1 and linked is None:
        return False, "NO: PRADA links no keys"
    if keys > 1 and linked is not None and linked < keys:
        return False, f"NO: {linked} of {keys} keys linked"
    return True, "yes"


def first_text(c: Cell) -> str:
    return "not flagged" if c.first_flag is None else f"{c.first_flag:,}"


def tables(report: Report) -> str:
    lines = [f"### Attacks: first key flagged (stream query, 1-based); goal: flagged at a query < {GOAL_QUERIES}, over "
             f"100 keys also every key linked", "",
             "| dataset | stream | queries | keys | detector | first key flagged at | keys flagged | keys linked "
             "(groups) | goal |", "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for c in report.cells:
        link = "-" if c.linked is None else f"{c.linked} ({c.groups})"
        lines.append(f"| {c.dataset} | {c.stream} | {c.queries:,} | {c.keys} | {c.detector} | {first_text(c)} | "
                     f"{c.flagged}/{c.keys} | {link} | {c.verdict} |")
    lines += ["", f"### Benign: distinct test images; goal: ≤ {GOAL_MATCHED:.1%} of queries matched", "",
              "| dataset | images | clients | queries | detector | queries matched | clients flagged | goal | note |",
              "|---|---:|---:|---:|---|---:|---:|---|---|"]
    for b in report.benign:
        matched = "- (no per-query match)" if b.matched is None else f"{b.matched:.3%}"
        goal = "-" if b.goal is None else ("yes" if b.goal else "NO")
        lines.append(f"| {b.dataset} | {b.images:,} | {b.clients} | {b.queries:,} | {b.detector} | {matched} | "
                     f"{b.flagged}/{b.clients} | {goal} | {b.note} |")
    lines += ["", "### Summary: attack cells meeting the goal", "", "| dataset | detector | 1 key | 100 keys |",
              "|---|---|---:|---:|"]
    for dataset in dict.fromkeys(c.dataset for c in report.cells):
        for detector in DETECTORS:
            mine = [c for c in report.cells if c.dataset == dataset and c.detector == detector]
            cols = [f"{sum(c.goal for c in mine if c.keys == k)} of {sum(1 for c in mine if c.keys == k)}"
                    for k in KEYS]
            lines.append(f"| {dataset} | {detector} | {' | '.join(cols)} |")
    return "\n".join(lines)
