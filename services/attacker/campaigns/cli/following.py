"""Submitting a campaign from the command line and following it: a progress bar that names the phase, the
results as tables, and a readable message and exit code when the API refuses. `bbrange attack run` and
`bbrange demo` both call submit_and_follow."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bbrange.attacker.campaigns.client import AttackerClient
from bbrange.attacker.campaigns.storage.records import CampaignRecord
from bbrange.shared.cli_requests import exit_on_refusal

console = Console()


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def print_result(record: CampaignRecord, api: str) -> None:
    epochs = Table("ρ", "|S_ρ|", "labelling queries", "substitute accuracy", "oracle agreement", "wall s",
                   title="substitute epochs")
    for e in record.epochs:
        epochs.add_row(str(e.rho), str(e.set_size), str(e.labelling_queries), percent(e.substitute_accuracy),
                       percent(e.oracle_agreement), f"{e.wall_s:.1f}")
    console.print(epochs)
    results = record.results.model_dump() if record.results is not None else {}
    q = record.queries
    table = Table("", "value", title=f"campaign {record.id}: {record.state.value}")
    rows = [
        ("substitute accuracy", percent(results.get("substitute_accuracy"))),
        ("oracle agreement", percent(results.get("oracle_agreement"))),
        ("oracle accuracy on the clean images", percent(results.get("clean_accuracy"))),
        ("transfer rate", percent(results.get("transfer_rate"))),
        ("noise baseline (same images, random noise of the same size)", percent(results.get("noise_rate"))),
        ("transfer over the noise baseline", "-" if results.get("lift_over_noise") is None else
         f"{results['lift_over_noise']:+.2%}"),
        ("transfer on the images the oracle labels correctly", percent(results.get("transfer_rate_on_correct"))),
        ("misclassified by the oracle", percent(results.get("misclassification_rate"))),
        ("oracle label changed", percent(results.get("label_change_rate"))),
        ("samples", str(results.get("samples", 0))),
        ("mean L0 / L2 / L∞", "-" if results.get("mean_l0") is None else
         f"{results['mean_l0']:.2%} / {results['mean_l2']:.3f} / {results['mean_linf']:.3f}"),
        ("queries (labelling / agreement / evaluation / baseline)",
         f"{q.labelling} / {q.agreement} / {q.evaluation} / {q.baseline}"),
        ("queries total", str(q.total)),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if results.get("by_eps"):
        sizes = Table("ε", "transfer", "noise baseline", "over noise", "examples", title="at each ε (one substitute)")
        for s in results["by_eps"]:
            sizes.add_row(f"{s['eps']:g}", percent(s["transfer_rate"]), percent(s["noise_rate"]),
                          "-" if s["lift_over_noise"] is None else f"{s['lift_over_noise']:+.2%}", str(s["samples"]))
        console.print(sizes)
    if record.error is not None:
        console.print(f"[red]{record.error.code}: {record.error.message}[/]")
    if record.samples_available:
        console.print(f"grid picture: {api.rstrip('/')}/attacks/{record.id}/samples.png")
    console.print(f"report: bbrange attack report {record.id} --output report.html "
                  f"({api.rstrip('/')}/attacks/{record.id}/report)")


def follow(client: AttackerClient, cid: str, poll_s: float = 1.0) -> CampaignRecord:
    """Follow the campaign until it finishes, with a progress bar that names the phase."""
    shown_epochs = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("queued", total=1.0)

        def show(record: CampaignRecord) -> None:
            nonlocal shown_epochs
            for e in record.epochs[shown_epochs:]:
                progress.console.print(f"  ρ={e.rho} |S|={e.set_size} substitute accuracy "
                                       f"{percent(e.substitute_accuracy)}, agreement {percent(e.oracle_agreement)}")
            shown_epochs = len(record.epochs)
            progress.update(task, completed=record.progress,
                            description=f"{record.state.value}: {record.phase.value} ({record.queries.total} queries)")

        return client.follow(cid, on_progress=show, poll_s=poll_s)


def submit_and_follow(spec: Mapping[str, Any], api: str, token: str, *, wait: bool = True,
                      grid_out: Path | None = None) -> CampaignRecord | None:
    """Submit the spec, follow it and print its results (None when not waiting). Exits 1 on a refusal, 2 when
    the API is unreachable, 130 when the user stops following."""
    with AttackerClient(api, token) as client, exit_on_refusal(console):
        accepted = client.submit(spec)
        console.print(f"campaign [bold]{accepted.id}[/] queued: {api.rstrip('/')}{accepted.location}")
        if not wait:
            return None
        try:
            record = follow(client, accepted.id)
        except KeyboardInterrupt:
            console.print(f"stopped following; the campaign goes on. Cancel it with: curl -X POST "
                          f"-H 'Authorization: Bearer $BBRANGE_ATTACK_TOKEN' "
                          f"{api.rstrip('/')}/attacks/{accepted.id}/cancel")
            raise typer.Exit(130) from None
        print_result(record, api)
        if grid_out is not None and record.samples_available:
            grid_out.write_bytes(client.samples_png(record.id))
            console.print(f"grid picture saved to {grid_out}")
    return record
