"""`bbrange attack …`: the attacker service (serve, worker) and its client (run), beside the engine's
own commands (presets, substitute, jsma), which are merged in so that one `attack` group holds both."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bbrange.attacker.campaigns.cli.following import submit_and_follow
from bbrange.attacker.campaigns.cli.reports import app as reports_app
from bbrange.attacker.campaigns.cli.users import app as users_app
from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.spec.attacks.registry import load_attacks
from bbrange.attacker.campaigns.spec.builder import bbrange_target, campaign_spec
from bbrange.attacker.campaigns.storage.records import CampaignState
from bbrange.attacker.engine.cli import app as engine_app
from bbrange.attacker.engine.vocabulary import DEFAULT_ATTACK, DEFAULT_STEP_SIZE

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
    api_key: Annotated[list[str] | None, typer.Option(
        envvar="BBRANGE_ORACLE_API_KEY", help="Oracle API key; repeat it to spread the campaign's queries over "
                                              "several keys, taking turns (in the variable: keys apart by spaces).")] = None,
    dataset: Annotated[str, typer.Option(help="mnist or gtsrb.")] = "mnist",
    s0: Annotated[int, typer.Option(help="|S0|: test images from --s0-offset on.")] = 150,
    s0_offset: int = 0,
    preset: Annotated[list[str] | None, typer.Option(
        help="Substitute preset (default papernot-mnist); repeat it for an ensemble trained on the same labels, "
             "crafted on as the average of their logits.")] = None,
    augment_with: Annotated[str, typer.Option(help="An ensemble: whose Jacobian augments, first or "
                                                   "ensemble.")] = "first",
    adversarial_training: Annotated[str | None, typer.Option(
        help="Train each substitute adversarially too: fgsm or pgd (half clean, half adversarial).")] = None,
    adversarial_eps: Annotated[float, typer.Option(help="ε of the adversarial training examples.")] = 0.3,
    rho: Annotated[int, typer.Option(help="Substitute epochs ρ.")] = 6,
    lam: Annotated[float, typer.Option(help="λ, the augmentation step, signed: negative steps towards the "
                                            "oracle's decision boundary; +0.1 is the paper as printed.")] = DEFAULT_STEP_SIZE,
    periodic_step: bool = False,
    tau: int = 3,
    reservoir: bool = False,
    sigma: int = 3,
    kappa: int = 400,
    train_epochs: int = 10,
    method: Annotated[str, typer.Option(help="The attack: a registered crafting method (built in: fgsm, pgd, ifgsm, "
                                             "mifgsm, difgsm, rfgsm, jsma, hopskipjump, sign_opt, rays, hybrid; "
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
) -> None:
    """Submit a campaign, follow it with a progress bar, and print the results."""
    if spec_file is not None:
        spec: dict[str, Any] = json.loads(spec_file.read_text())
    else:
        crafting = {"method": method, **crafting_options(crafting_settings or [])}
        substitute: dict[str, Any] = {"periodic_step": periodic_step, "tau": tau, "reservoir": reservoir,
                                      "sigma": sigma, "kappa": kappa, "augment_with": augment_with}
        if adversarial_training is not None:
            substitute["adversarial_training"] = {"method": adversarial_training, "eps": adversarial_eps}
        spec = campaign_spec(
            bbrange_target(oracle_url, api_key or [""], model), dataset=dataset, s0=s0, s0_offset=s0_offset,
            preset=preset, rho=rho, lam=lam, train_epochs=train_epochs, crafting=crafting,
            eval_size=eval_size, seed=seed, substitute=substitute, query_budget=budget)
    if not token:
        console.print("[red]no user token: give --token or set BBRANGE_ATTACK_TOKEN (an admin creates users with "
                      "`bbrange attack users create`)[/]")
        raise typer.Exit(2)
    record = submit_and_follow(spec, api, token, wait=wait, grid_out=grid_out)
    if record is not None and record.state != CampaignState.succeeded:
        raise typer.Exit(1)
