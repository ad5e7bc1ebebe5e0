"""`bbrange attack …`: the attacker service (serve, worker) and its client (run), beside the engine's
own commands (presets, substitute, jsma), which are merged in so that one `attack` group holds both."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bbrange.attacker.campaigns.cli.reports import app as reports_app
from bbrange.attacker.campaigns.cli.users import app as users_app
from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.spec.attacks.registry import load_attacks
from bbrange.attacker.engine.cli import app as engine_app
from bbrange.attacker.engine.vocabulary import DEFAULT_ATTACK, DEFAULT_STEP_SIZE
from bbrange.shared.cli_requests import request_or_exit

app = typer.Typer(help="The attacker: black-box campaigns against a remote oracle, and the attack engine.",
                  no_args_is_help=True)
app.add_typer(engine_app)  # no name: the engine's commands join this group
app.add_typer(users_app, name="users")
app.add_typer(reports_app)  # no name: `bbrange attack report`, `bbrange attack model-report`
console = Console()

RedisOpt = Annotated[str | None, typer.Option("--redis-url", envvar="BBRANGE_ATTACK_REDIS_URL",
                                                 help="Campaign state and job queue (default redis://127.0.0.1:6379/1).")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", envvar="BBRANGE_ATTACK_DATA_DIR",
                                                    help="Sample storage shared by the API and the workers.")]
MetricsDirOpt = Annotated[Path | None, typer.Option(
    "--metrics-dir", envvar="BBRANGE_ATTACK_METRICS_DIR",
    help="prometheus-client multiprocess directory; give the API and the workers of a host the same one.")]
ApiOpt = Annotated[str, typer.Option("--api", envvar="BBRANGE_ATTACK_API_URL", help="Attacker API base URL.")]
TokenOpt = Annotated[str, typer.Option("--token", envvar="BBRANGE_ATTACK_TOKEN",
                                       help="Your attacker API token (an admin creates it: bbrange attack users create).")]


def _settings(**overrides: Any) -> AttackerSettings:
    return AttackerSettings(**{k: v for k, v in overrides.items() if v is not None})


def _require_secret_key(settings: AttackerSettings) -> None:
    from bbrange.attacker.campaigns.storage.sealing import KeySealer, MissingSecretKey

    try:
        KeySealer(settings.secret_key)
    except MissingSecretKey as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8100,
    redis_url: RedisOpt = None,
    data_dir: DataDirOpt = None,
    metrics_dir: MetricsDirOpt = None,
    log_level: str = "info",
) -> None:
    """Serve the campaign API (FastAPI + uvicorn). Campaigns run in `bbrange attack worker` processes."""
    import uvicorn

    from bbrange.attacker.campaigns.campaign_metrics import enable_multiprocess

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(redis_url=redis_url, data_dir=data_dir, metrics_dir=metrics_dir)
    _require_secret_key(settings)
    load_attacks()  # the built-in attacks and the BBRANGE_ATTACK_PLUGINS plug-ins: a broken plug-in stops the start
    if settings.metrics_dir is not None:
        enable_multiprocess(settings.metrics_dir)
    from bbrange.attacker.campaigns.api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)


@app.command()
def worker(
    redis_url: RedisOpt = None,
    data_dir: DataDirOpt = None,
    metrics_dir: MetricsDirOpt = None,
    metrics_port: Annotated[int, typer.Option(help="Serve this worker's /metrics on this port (0: don't).")] = 0,
    metrics_host: Annotated[str, typer.Option(help="Interface of the metrics endpoint (0.0.0.0 in containers, "
                                                   "where Prometheus scrapes each replica).")] = "0.0.0.0",
    name: Annotated[str | None, typer.Option(help="Worker name (default: RQ's host.pid name).")] = None,
    torch_threads: Annotated[int | None, typer.Option(envvar="BBRANGE_ATTACK_TORCH_THREADS", min=1,
                                                         help="Torch threads per campaign.")] = None,
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
    log_level: str = "info",
) -> None:
    """Run campaigns from the queue, one at a time, each in its own forked process. Start several to scale.

    SIGTERM or SIGINT stops an idle worker at once, a busy one once its campaign is over; a second one stops it
    at once (its campaign then ends failed, worker_lost)."""
    from prometheus_client import start_http_server

    from bbrange.attacker.campaigns.campaign_metrics import attack_metrics, enable_multiprocess, exposition_registry
    from bbrange.attacker.campaigns.worker import entry

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(redis_url=redis_url, data_dir=data_dir, metrics_dir=metrics_dir, torch_threads=torch_threads)
    _require_secret_key(settings)
    load_attacks()  # before the work horses fork, so that each inherits the registered plug-ins
    # Campaigns run in forked work horses: their metrics only reach this process through files.
    directory = enable_multiprocess(settings.metrics_dir)
    attack_metrics().show_zeros()
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_host, registry=exposition_registry())
    entry.configure(settings)
    try:
        entry.run_worker(settings, name, burst=burst, logging_level=log_level.upper())
    finally:
        if settings.metrics_dir is None:  # a private directory nobody else reads
            shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- client


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    return request_or_exit(client, method, path, "attacker API", console, **kwargs)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def print_result(record: dict[str, Any], api: str) -> None:
    epochs = Table("ρ", "|S_ρ|", "labelling queries", "substitute accuracy", "oracle agreement", "wall s",
                   title="substitute epochs")
    for e in record["epochs"]:
        epochs.add_row(str(e["rho"]), str(e["set_size"]), str(e["labelling_queries"]), percent(e["substitute_accuracy"]),
                       percent(e["oracle_agreement"]), f"{e['wall_s']:.1f}")
    console.print(epochs)
    results = record.get("results") or {}
    q = record["queries"]
    table = Table("", "value", title=f"campaign {record['id']}: {record['state']}")
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
         f"{q['labelling']} / {q['agreement']} / {q['evaluation']} / {q['baseline']}"),
        ("queries total", str(q["total"])),
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
    if record.get("error"):
        console.print(f"[red]{record['error']['code']}: {record['error']['message']}[/]")
    if record.get("samples_available"):
        console.print(f"grid picture: {api.rstrip('/')}/attacks/{record['id']}/samples.png")
    console.print(f"report: bbrange attack report {record['id']} --output report.html "
                  f"({api.rstrip('/')}/attacks/{record['id']}/report)")


def follow(client: httpx.Client, cid: str, poll_s: float = 1.0) -> dict[str, Any]:
    """Poll the campaign until it finishes, with a progress bar that names the phase."""
    shown_epochs = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("queued", total=1.0)
        while True:
            record = _request(client, "GET", f"/attacks/{cid}")
            for e in record["epochs"][shown_epochs:]:
                progress.console.print(f"  ρ={e['rho']} |S|={e['set_size']} substitute accuracy "
                                       f"{percent(e['substitute_accuracy'])}, agreement {percent(e['oracle_agreement'])}")
            shown_epochs = len(record["epochs"])
            q = record["queries"]["total"]
            progress.update(task, completed=record["progress"],
                            description=f"{record['state']}: {record['phase']} ({q} queries)")
            if record["state"] in ("succeeded", "failed", "cancelled"):
                return record
            time.sleep(poll_s)


def crafting_options(settings: list[str]) -> dict[str, Any]:
    """`-c KEY=VALUE` options as the spec's `crafting` fields: a key given twice or more becomes a list."""
    values: dict[str, list[Any]] = {}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: give KEY=VALUE", param_hint="--crafting")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        values.setdefault(key.strip(), []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


@app.command()
def run(
    oracle_url: Annotated[str, typer.Option(envvar="BBRANGE_ORACLE_URL", help="Oracle base URL.")] = "http://127.0.0.1:8000",
    model: Annotated[str, typer.Option(help="Model name on the oracle.")] = "mnist",
    api_key: Annotated[str, typer.Option(envvar="BBRANGE_ORACLE_API_KEY", help="Oracle API key.")] = "",
    dataset: Annotated[str, typer.Option(help="mnist or gtsrb.")] = "mnist",
    s0: Annotated[int, typer.Option(help="|S0|: test images from --s0-offset on.")] = 150,
    s0_offset: int = 0,
    preset: str = "papernot-mnist",
    rho: Annotated[int, typer.Option(help="Substitute epochs ρ.")] = 6,
    lam: Annotated[float, typer.Option(help="λ, the augmentation step, signed: negative steps towards the "
                                            "oracle's decision boundary; +0.1 is the paper as printed.")] = DEFAULT_STEP_SIZE,
    periodic_step: bool = False,
    tau: int = 3,
    reservoir: bool = False,
    sigma: int = 3,
    kappa: int = 400,
    train_epochs: int = 10,
    method: Annotated[str, typer.Option(help="The attack: a registered crafting method (built in: fgsm, jsma; "
                                             "plug-ins add theirs).")] = DEFAULT_ATTACK,
    crafting_settings: Annotated[list[str] | None, typer.Option(
        "--crafting", "-c", help="KEY=VALUE, a setting of the attack (its spec's `crafting` fields: eps=0.3, "
                                 "theta=-1, target=next ...); repeat a key for a list (-c eps=0.3 -c eps=0.1: "
                                 "several sizes from one substitute, the first the headline). Values are read as "
                                 "JSON, else as text.")] = None,
    eval_size: Annotated[int, typer.Option(help="Evaluation images (outside S0).")] = 1000,
    budget: Annotated[int | None, typer.Option(help="Query budget cap of the campaign.")] = None,
    seed: int = 0,
    spec_file: Annotated[Path | None, typer.Option("--spec-file", "--spec", help="A JSON campaign spec (any target "
                                                   "protocol, your own data); replaces the options above.")] = None,
    api: ApiOpt = "http://127.0.0.1:8100",
    token: TokenOpt = "",
    wait: Annotated[bool, typer.Option(help="Follow the campaign until it finishes.")] = True,
    grid_out: Annotated[Path | None, typer.Option(help="Also save the grid picture here.")] = None,
) -> dict[str, Any] | None:
    """Submit a campaign, follow it with a progress bar, and print the results."""
    if spec_file is not None:
        spec: dict[str, Any] = json.loads(spec_file.read_text())
    else:
        crafting = {"method": method, **crafting_options(crafting_settings or [])}
        spec = {
            "target": {"oracle_url": oracle_url, "model": model, "api_key": api_key},
            "dataset": dataset,
            "initial_set": {"kind": "dataset", "split": "test", "offset": s0_offset, "size": s0},
            "substitute": {"preset": preset, "rho": rho, "lam": lam, "periodic_step": periodic_step, "tau": tau,
                           "reservoir": reservoir, "sigma": sigma, "kappa": kappa,
                           "training": {"epochs": train_epochs}},
            "crafting": crafting,
            "evaluation": {"split": "test", "size": eval_size},
            "query_budget": budget,
            "seed": seed,
        }
    if not token:
        console.print("[red]no user token: give --token or set BBRANGE_ATTACK_TOKEN (an admin creates users with "
                      "`bbrange attack users create`)[/]")
        raise typer.Exit(2)
    with httpx.Client(base_url=api, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        accepted = _request(client, "POST", "/attacks", json=spec)
        cid = accepted["id"]
        console.print(f"campaign [bold]{cid}[/] queued: {api.rstrip('/')}{accepted['location']}")
        if not wait:
            return None
        try:
            record = follow(client, cid)
        except KeyboardInterrupt:
            console.print(f"stopped following; the campaign goes on. Cancel it with: curl -X POST "
                          f"-H 'Authorization: Bearer $BBRANGE_ATTACK_TOKEN' {api.rstrip('/')}/attacks/{cid}/cancel")
            raise typer.Exit(130) from None
        print_result(record, api)
        if grid_out is not None and record.get("samples_available"):
            r = client.get(f"/attacks/{cid}/samples.png")
            r.raise_for_status()
            grid_out.write_bytes(r.content)
            console.print(f"grid picture saved to {grid_out}")
    if record["state"] != "succeeded":
        raise typer.Exit(1)
    return record
