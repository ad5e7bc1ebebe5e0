"""How the CLI talks to either service: one JSON request, and a readable message and exit code on failure."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.console import Console


def request_or_exit(client: httpx.Client, method: str, path: str, service: str, console: Console,
                    **kwargs: Any) -> dict[str, Any]:
    """Send one request; on a refusal print the service's error body and exit 1, if unreachable exit 2."""
    try:
        r = client.request(method, path, **kwargs)
    except httpx.HTTPError as e:
        console.print(f"[red]cannot reach the {service} at {client.base_url}: {e}[/]")
        raise typer.Exit(2) from None
    body: dict[str, Any]
    try:
        body = r.json()
    except ValueError:
        body = {"error": {"message": r.text[:500]}}
    if r.is_error:
        error = body.get("error", {})
        console.print(f"[red]{r.status_code} {error.get('code', '')}: {error.get('message', body)}[/]")
        raise typer.Exit(1)
    return body
