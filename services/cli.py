"""The single entry point, `bbrange`: training, serving, attacking, and the local range."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bbrange.attacker.campaigns.cli.following import percent
from bbrange.attacker.campaigns.cli.main import app as attack_app
from bbrange.attacker.campaigns.storage.records import CampaignRecord, CampaignState
from bbrange.attacker.engine.vocabulary import DEFAULT_STEP_SIZE
from bbrange.oracle.cli import app as oracle_app
from bbrange.shared.datasets import DATA_DIR_ENV

app = typer.Typer(help="blackbox-range: black-box attacks on deployed classifiers.", no_args_is_help=True)
app.add_typer(oracle_app, name="oracle")
console = Console()

def _beside_the_paper(record: CampaignRecord) -> Table:
    r = record.results.model_dump() if record.results is not None else {}
    q = record.queries.model_dump()
    table = Table("", "paper (MetaMind oracle)", "this run", "settings", title="Papernot et al. 2017, Section 5.1")
    table.add_row("substitute accuracy after ρ=6", "81.20%", percent(r.get("substitute_accuracy")),
                  f"S0 = 150 MNIST test images, λ = {DEFAULT_STEP_SIZE:+g} (the paper prints +0.1)")
    table.add_row("misclassified by the oracle at ε=0.3", "84.24%", percent(r.get("misclassification_rate")),
                  "FGSM on the substitute")
    table.add_row("  random ±0.3 noise on the same images", "-", percent(r.get("noise_rate")),
                  "the baseline: what noise of the same size does alone")
    table.add_row("  over images the oracle labelled correctly", "-", percent(r.get("transfer_rate_on_correct")),
                  f"oracle clean accuracy {percent(r.get('clean_accuracy'))}")
    table.add_row("labelling queries", "6,400 (100·2^6)", f"{q.get('labelling', 0):,}", "150·2^6")
    return table


# The demo's FGSM sizes, all from its one substitute: ε = 0.3 (the paper's) is the headline, the others draw
# the curve of its report at evaluation queries only (2 × 9,850 each).
DEMO_SIZES = (0.3, 0.1, 0.2)

WorkdirOption = Annotated[Path, typer.Option("--workdir", help="Logs, Redis data and campaign samples.")]
ModelDirOption = Annotated[Path, typer.Option("--model-dir", envvar="BBRANGE_MODEL_DIR", help="Oracle models.")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", envvar=DATA_DIR_ENV, help="Datasets.")]


def _stop_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd, Kubernetes, a cancelled CI job) and SIGHUP stop the range as Ctrl-C does:
    every process it started, and what they forked, is stopped before this one exits. Once: a second signal
    during the stop does not interrupt it."""

    def interrupt(signum: int, _frame: object) -> None:
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, interrupt)


@app.command()
def up(
    workdir: WorkdirOption = Path("runs/range"),
    model_dir: ModelDirOption = Path("models"),
    data_dir: DataDirOption = None,
    redis_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 6390,
    oracle_port: int = 8000,
    attacker_port: int = 8100,
    workers: Annotated[int, typer.Option(min=1, help="Attacker worker processes.")] = 1,
    budget: Annotated[int, typer.Option(min=0, help="Query budget of the client key created.")] = 100_000,
    device: str = "auto",
) -> None:
    """Run the whole range on loopback (Redis, oracle, attacker API, workers) until Ctrl-C or SIGTERM."""
    from bbrange.local_range import LocalRange, RangeError

    _stop_on_sigterm()
    local = LocalRange(workdir, model_dir, data_dir, redis_port, oracle_port, attacker_port, workers, budget, device,
                       console)
    try:
        with local as endpoints:
            table = Table("service", "where", title="blackbox-range is up")
            table.add_row("redis", endpoints.redis_url)
            table.add_row("oracle", f"{endpoints.oracle_url}  (docs: {endpoints.oracle_url}/docs)")
            table.add_row("attacker", f"{endpoints.attacker_url}  (docs: {endpoints.attacker_url}/docs)")
            table.add_row("oracle admin token", endpoints.admin_token)
            table.add_row("client key", f"{endpoints.api_key}  ({endpoints.client_id}, budget {budget})")
            table.add_row("attacker admin token", endpoints.attack_admin_token)
            table.add_row("user token", f"{endpoints.user_token}  ({endpoints.user_id}; BBRANGE_ATTACK_TOKEN)")
            table.add_row("logs", str(workdir / "logs"))
            console.print(table)
            console.print("Ctrl-C stops everything.")
            while True:
                local.check_alive()
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping…")
    except RangeError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    console.print("stopped: no process left behind")
app.add_typer(attack_app, name="attack")


@app.command()
def demo(
    workdir: WorkdirOption = Path("runs/demo"),
    model_dir: ModelDirOption = Path("models"),
    data_dir: DataDirOption = None,
    eval_size: Annotated[int, typer.Option(help="Evaluation images (the test images after S0).")] = 9850,
    device: str = "auto",
) -> None:
    """The main job: start the range, run the paper's MNIST campaign (FGSM ε=0.3, S0=150, ρ=6) over HTTP,
    print the results beside the paper's, and write the campaign's report (its path is the last line)."""
    from bbrange.attacker.campaigns.cli.following import submit_and_follow
    from bbrange.attacker.campaigns.client import AttackerClient
    from bbrange.attacker.campaigns.spec.builder import bbrange_target, campaign_spec, fgsm
    from bbrange.local_range import LocalRange, RangeError
    from bbrange.shared.oracle_admin import OracleAdmin

    _stop_on_sigterm()
    started = time.perf_counter()
    grid = (workdir / "samples.png").resolve()
    report = (workdir / "report.html").resolve()
    try:
        with LocalRange(workdir, model_dir, data_dir, workers=1, device=device, console=console) as endpoints:
            console.print(f"range up: oracle {endpoints.oracle_url}, attacker {endpoints.attacker_url} "
                          f"(logs in {workdir / 'logs'}); user token {endpoints.user_token}")
            spec = campaign_spec(bbrange_target(endpoints.oracle_url, endpoints.api_key),
                                 crafting=fgsm(list(DEMO_SIZES)), eval_size=eval_size)
            record = None
            try:
                record = submit_and_follow(spec, endpoints.attacker_url, endpoints.user_token, grid_out=grid)
            finally:
                with OracleAdmin(endpoints.oracle_url, endpoints.admin_token) as oracle:
                    used = oracle.client(endpoints.client_id).used
                console.print(f"the oracle charged {used} queries to the campaign's key")
                if record is not None:
                    with AttackerClient(endpoints.attacker_url, endpoints.user_token) as attacker:
                        report.write_text(attacker.report(record.id), encoding="utf-8")
    except RangeError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    if record is None or record.state != CampaignState.succeeded:
        raise typer.Exit(1)
    console.print(_beside_the_paper(record))
    console.print(f"grid picture: {grid}")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    console.print(f"campaign report: {report}", soft_wrap=True)  # the last line: where to look
