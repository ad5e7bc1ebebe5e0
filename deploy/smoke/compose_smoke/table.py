"""The smoke's report: one row per step with its time, result and what it found."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str, str]] = []
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, str]]:
        """A step: its `note["detail"]` goes in the table; an exception marks it FAIL and goes on up."""
        note: dict[str, str] = {"detail": ""}
        t0 = time.monotonic()
        print(f"--- {name}", flush=True)
        try:
            yield note
        except BaseException as e:
            detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            self.rows.append((name, time.monotonic() - t0, "FAIL", detail[:160]))
            raise
        self.rows.append((name, time.monotonic() - t0, "ok", note["detail"]))

    def render(self) -> str:
        width = max([len(r[0]) for r in self.rows] + [4])
        lines = [f"| {'step':<{width}} | time (s) | result | detail |", f"|{'-' * (width + 2)}|---------:|--------|--------|"]
        for name, seconds, result, detail in self.rows:
            lines.append(f"| {name:<{width}} | {seconds:8.1f} | {result:<6} | {detail} |")
        total = time.monotonic() - self.started
        lines.append(f"| {'total':<{width}} | {total:8.1f} |        |        |")
        return "\n".join(lines)
