"""`bbrange attack report` and `bbrange attack model-report`: a campaign's (or a model's) report from the
attacker API, saved as one self-contained HTML file (it opens offline, in any browser, and prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import httpx
import typer
from rich.console import Console

app = typer.Typer()
console = Console()

ApiOpt = Annotated[str, typer.Option("--api", envvar="BBRANGE_ATTACK_API_URL", help="Attacker API base URL.")]
TokenOpt = Annotated[str, typer.Option("--token", envvar="BBRANGE_ATTACK_TOKEN",
                                       help="Your attacker API token (or the admin's).")]


def fetch_report(api: str, token: str, path: str, params: dict[str, str] | None = None) -> str:
    """The HTML page at `path`; on a refusal, the API's error and exit 1; unreachable, exit 2."""
    try:
        r = httpx.get(api.rstrip("/") + path, params=params, timeout=120,
                      headers={"Authorization": f"Bearer {token}"} if token else {})
    except httpx.HTTPError as e:
        console.print(f"[red]cannot reach the attacker API at {api}: {e}[/]")
        raise typer.Exit(2) from None
    if r.is_error:
        try:
            error = r.json().get("error", {})
        except ValueError:
            error = {"message": r.text[:500]}
        console.print(f"[red]{r.status_code} {error.get('code', '')}: {error.get('message', '')}[/]")
        raise typer.Exit(1)
    return r.text


def _save(html: str, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    console.print(f"report saved to {output.resolve()}")


@app.command()
def report(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the HTML file.")] = Path("report.html"),
    api: ApiOpt = "http://127.0.0.1:8100",
    token: TokenOpt = "",
) -> None:
    """Save a campaign's report: plots, samples, the blue side, and the command that reruns it."""
    _save(fetch_report(api, token, f"/attacks/{quote(campaign_id, safe='')}/report"), output)


@app.command("model-report")
def model_report(
    model: Annotated[str, typer.Argument(help="The target model's name at its endpoint.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the HTML file.")] = Path("model.html"),
    oracle_url: Annotated[str | None, typer.Option(help="Only campaigns against this endpoint.")] = None,
    api: ApiOpt = "http://127.0.0.1:8100",
    token: TokenOpt = "",
) -> None:
    """Save a model's page: every finished campaign against it (yours; the admin's: everyone's), its robustness."""
    params = {"oracle_url": oracle_url} if oracle_url else None
    _save(fetch_report(api, token, f"/models/{quote(model, safe='')}/report", params), output)
