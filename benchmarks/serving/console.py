"""The console every part of the throughput benchmark prints to, and how it formats figures."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 170)


def fmt(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"
