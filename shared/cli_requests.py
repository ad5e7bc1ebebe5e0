"""How the CLI shows a refusal of either service: the service's error and exit 1; unreachable, exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from bbrange.shared.service_client import ServiceError


@contextmanager
def exit_on_refusal(console: Console) -> Iterator[None]:
    """Inside it, a ServiceError from a typed client is printed for a person and ends the command."""
    try:
        yield
    except ServiceError as e:
        if e.status == 0:
            console.print(f"[red]cannot reach the {e.service} at {e.message}[/]")
            raise typer.Exit(2) from None
        console.print(f"[red]{e.status} {e.code}: {e.message}[/]")
        raise typer.Exit(1) from None
