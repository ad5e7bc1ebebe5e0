"""`bbrange attack report` and `bbrange attack model-report`: a campaign's (or a model's) report from the
attacker API, saved as one self-contained HTML file (it opens offline, in any browser, and prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bbrange.attacker.campaigns.client import AttackerClient
from bbrange.shared.cli_requests import exit_on_refusal

app = typer.Typer()
console = Console()

ApiOpt = Annotated[str, typer.Option("--api", envvar="BBRANGE_ATTACK_API_URL", help="Attacker API base URL.")]
TokenOpt = Annotated[str, typer.Option("--token", envvar="BBRANGE_ATTACK_TOKEN",
                                       help="Your attacker API token (or the admin's).")]


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
    with AttackerClient(api, token) as client, exit_on_refusal(console):
        html = client.report(campaign_id)
    _save(html, output)


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
    with AttackerClient(api, token) as client, exit_on_refusal(console):
        html = client.model_report(model, params)
    _save(html, output)
