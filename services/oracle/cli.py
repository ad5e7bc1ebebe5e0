"""`bbrange oracle …`: train, serve and administer the oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bbrange.shared.admin_schemas import ClientView
from bbrange.shared.cli_requests import exit_on_refusal
from bbrange.shared.datasets import DATA_DIR_ENV, DATASETS
from bbrange.shared.devices import resolve_device
from bbrange.shared.oracle_admin import OracleAdmin

app = typer.Typer(help="The victim: label-only predictions of trained classifiers, metered per API key.",
                  no_args_is_help=True)
console = Console()

ModelDirOption = Annotated[Path, typer.Option("--model-dir", envvar="BBRANGE_MODEL_DIR",
                                              help="Where model weights and cards live.")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", envvar=DATA_DIR_ENV,
                                                    help="Dataset directory (mnist/, gtsrb/).")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]


@app.command()
def train(
    dataset: Annotated[str, typer.Option("--dataset", help=f"One of: {', '.join(DATASETS)}.")],
    model_dir: ModelDirOption = Path("models"),
    data_dir: DataDirOption = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the dataset's name).")] = None,
    architecture: Annotated[str | None, typer.Option(help="Architecture (default: the dataset's oracle).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default: the recipe's).")] = None,
    recipe: Annotated[str | None, typer.Option(help="Training recipe (default: the dataset's name): mnist, "
                                                       "mnist-thesis (the JSMA thesis's SGD schedule, ~35 min on "
                                                       "2 cores), mnist-fgsm-adv (FGSM adversarial training), "
                                                       "mnist-ens-adv (ensemble adversarial training), "
                                                       "mnist-pgd-adv (PGD adversarial training, Madry et al. "
                                                       "scaled down: ~20-30 min on 2 cores), gtsrb.")] = None,
    seed: int = 0,
    quick: Annotated[bool, typer.Option("--quick", help="A subset and one epoch, for tests.")] = False,
    device: DeviceOption = "auto",
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing when a servable model of this name "
                                             "exists (weights match the card, architecture current).")] = False,
) -> None:
    """Train an oracle model reproducibly and write its safetensors weights and model card."""
    from bbrange.oracle.models.training import recipe_for, train_oracle
    from bbrange.shared.model_card import card_path, unusable_reason

    if dataset not in DATASETS:
        raise typer.BadParameter(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}",
                                 param_hint="--dataset")
    try:
        recipe_for(dataset, recipe)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--recipe") from None
    if if_missing:
        existing = card_path(model_dir, name or dataset)
        if (unusable := unusable_reason(existing)) is None:
            console.print(f"{existing} is present and servable: not training")
            return
        console.print(f"training: {unusable}")
    card = train_oracle(dataset, model_dir, name=name, architecture=architecture, epochs=epochs, seed=seed,
                        quick=quick, device=resolve_device(device), data_dir=data_dir, recipe=recipe)
    console.print(
        f"[bold]{card.name}[/]: {card.architecture} on {card.dataset}, test accuracy "
        f"[bold]{card.test_accuracy:.2%}[/] on {card.test_samples} images, {card.wall_time_s:.0f} s on {card.device}"
    )
    console.print(f"weights {model_dir / card.weights_file} (sha256 {card.weights_sha256[:16]}…)")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    model_dir: ModelDirOption = Path("models"),
    redis_url: Annotated[str, typer.Option(envvar="BBRANGE_REDIS_URL", help="Budget store.")] = "redis://127.0.0.1:6379/0",
    model: Annotated[list[str] | None, typer.Option("--model", help="Serve only these models (repeatable).")] = None,
    device: DeviceOption = "auto",
    log_level: str = "info",
    workers: Annotated[int, typer.Option(min=1, envvar="BBRANGE_WORKERS",
                                         help="Oracle processes behind the port (budgets stay exact: they are "
                                              "charged in Redis).")] = 1,
) -> None:
    """Serve label-only predictions over HTTP (FastAPI + uvicorn, with uvloop and httptools). The admin token comes
    from BBRANGE_ADMIN_TOKEN, the proxies trusted to forward clients' addresses from BBRANGE_FORWARDED_ALLOW_IPS."""
    import logging
    import os

    import uvicorn

    from bbrange.oracle.api.app import create_app
    from bbrange.oracle.settings import OracleSettings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    resolve_device(device)  # fail here, with a clear message, rather than inside the server's start-up
    settings = OracleSettings(model_dir=model_dir, redis_url=redis_url, device=device, models=model or None)
    # X-Forwarded-For names the source address that unknown keys are throttled by: trusted only from the
    # configured proxies, never by default (uvicorn's default trusts any local process).
    proxies = settings.forwarded_allow_ips
    options: dict[str, Any] = {"host": host, "port": port, "log_level": log_level, "access_log": False,
                               "proxy_headers": bool(proxies), "forwarded_allow_ips": proxies or [],
                               "loop": "auto", "http": "auto"}  # auto: uvloop and httptools, installed with us
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    # Each worker process builds its own app from the environment, so the options go there.
    os.environ.update({"BBRANGE_MODEL_DIR": str(model_dir.resolve()), "BBRANGE_REDIS_URL": redis_url,
                       "BBRANGE_DEVICE": device})
    if model:
        os.environ["BBRANGE_MODELS"] = json.dumps(model)
    uvicorn.run("bbrange.oracle.api.app:create_app", factory=True, workers=workers, **options)


clients_app = typer.Typer(help="Create, inspect, top up and revoke API clients (through the admin API).",
                          no_args_is_help=True)
app.add_typer(clients_app, name="clients")

UrlOption = Annotated[str, typer.Option("--url", envvar="BBRANGE_ORACLE_URL", help="Oracle base URL.")]
AdminTokenOption = Annotated[str, typer.Option("--admin-token", envvar="BBRANGE_ADMIN_TOKEN", help="Admin token.")]


def _print_clients(clients: list[ClientView]) -> None:
    from rich.table import Table

    table = Table("client", "name", "budget", "used", "remaining", "rate/min", "revoked")
    for c in clients:
        table.add_row(c.client_id, c.name, str(c.budget), str(c.used), str(c.remaining),
                      str(c.rate_per_minute or "-"), "yes" if c.revoked else "no")
    console.print(table)


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="A label for the client.")],
    budget: Annotated[int, typer.Option(min=0, help="Total inputs it may have labelled.")],
    rate_per_minute: Annotated[int | None, typer.Option(min=1, help="Most inputs per minute.")] = None,
    url: UrlOption = "http://127.0.0.1:8000",
    admin_token: AdminTokenOption = "",
) -> None:
    """Create a client; prints its API key once."""
    with OracleAdmin(url, admin_token) as oracle, exit_on_refusal(console):
        created = oracle.create_client(name, budget, rate_per_minute)
    _print_clients([created.client])
    console.print(f"API key (shown once): [bold]{created.api_key}[/]")


@clients_app.command("list")
def clients_list(url: UrlOption = "http://127.0.0.1:8000", admin_token: AdminTokenOption = "") -> None:
    """List every client with its usage."""
    with OracleAdmin(url, admin_token) as oracle, exit_on_refusal(console):
        _print_clients(oracle.clients())


@clients_app.command("usage")
def clients_usage(client_id: str, url: UrlOption = "http://127.0.0.1:8000", admin_token: AdminTokenOption = "") -> None:
    """Show one client's budget and usage."""
    with OracleAdmin(url, admin_token) as oracle, exit_on_refusal(console):
        _print_clients([oracle.client(client_id)])


@clients_app.command("top-up")
def clients_top_up(
    client_id: str,
    amount: Annotated[int, typer.Option(min=1, help="Inputs to add to the budget.")],
    url: UrlOption = "http://127.0.0.1:8000",
    admin_token: AdminTokenOption = "",
) -> None:
    """Add to a client's budget."""
    with OracleAdmin(url, admin_token) as oracle, exit_on_refusal(console):
        _print_clients([oracle.top_up(client_id, amount)])


@clients_app.command("revoke")
def clients_revoke(client_id: str, url: UrlOption = "http://127.0.0.1:8000",
                   admin_token: AdminTokenOption = "") -> None:
    """Revoke a client's key: its requests get 403 from now on."""
    with OracleAdmin(url, admin_token) as oracle, exit_on_refusal(console):
        _print_clients([oracle.revoke(client_id)])


@app.command("import")
def import_model(
    model_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The .onnx file (self-contained).")],
    dataset: Annotated[str, typer.Option("--dataset", help="mnist, gtsrb (accuracy measured on its test set) or "
                                                           "custom (no test set here).")],
    name: Annotated[str | None, typer.Option(help="Model name (default: the file's stem).")] = None,
    input_shape: Annotated[str | None, typer.Option(
        "--input-shape", help="C,H,W of one input, as clients send it (default: the dataset's).")] = None,
    class_names: Annotated[str | None, typer.Option(
        "--class-names", help="Comma-separated class names (default: the dataset's, or 0..k-1).")] = None,
    value_range: Annotated[str | None, typer.Option(
        "--value-range", help="low,high the model expects, e.g. 0,255 or -1,1 (default 0,1).")] = None,
    channel_order: Annotated[str, typer.Option("--channel-order", help="rgb or bgr.")] = "rgb",
    mean: Annotated[str | None, typer.Option(help="Per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406.")
                    ] = None,
    std: Annotated[str | None, typer.Option(help="Per-channel std divided by after the mean.")] = None,
    layout: Annotated[str, typer.Option(help="nchw or nhwc: the layout of the model's input tensor.")] = "nchw",
    model_dir: ModelDirOption = Path("models"),
    data_dir: DataDirOption = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite a model of the same name.")] = False,
) -> None:
    """Import an ONNX classifier: checked against the declared input, measured, and written with its card."""
    from pydantic import ValidationError

    from bbrange.oracle.models.onnx_import import ImportRefused, ImportSpec, import_onnx, preprocessing_of

    try:
        spec = ImportSpec(
            name=name or model_file.stem, dataset=dataset,
            input_shape=tuple(int(v) for v in input_shape.split(",")) if input_shape else None,
            class_names=class_names.split(",") if class_names else None,
            preprocessing=preprocessing_of(value_range, channel_order, mean, std, layout))
        card = import_onnx(model_file.read_bytes(), spec, model_dir, source=model_file.name, data_dir=data_dir,
                           replace=replace)
    except ValidationError as e:
        raise typer.BadParameter("; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
                                 ) from None
    except (ImportRefused, ValueError) as e:
        console.print(f"[red]refused:[/] {e}", soft_wrap=True)
        raise typer.Exit(1) from None
    accuracy = "no test set" if card.test_accuracy is None else \
        f"test accuracy [bold]{card.test_accuracy:.2%}[/] on {card.test_samples} images"
    console.print(f"[bold]{card.name}[/]: ONNX on {card.dataset}, input {card.input_shape}, {card.num_classes} "
                  f"classes, {accuracy}")
    console.print(f"weights {model_dir / card.weights_file} (sha256 {card.weights_sha256[:16]}…); "
                  "restart the oracle to serve it, or import through POST /v1/admin/models")


@app.command("export")
def export_model(
    name: Annotated[str, typer.Argument(help="A model in the model directory.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write it (default NAME.onnx).")
                      ] = None,
    model_dir: ModelDirOption = Path("models"),
    opset: Annotated[int, typer.Option(help="ONNX opset of the export.")] = 17,
) -> None:
    """Write a model as ONNX (input `input`: float32 (batch, C, H, W) in [0, 1]; output `scores`)."""
    from bbrange.oracle.models.onnx_export import export_onnx
    from bbrange.shared.model_card import WeightsRefused, card_path

    target = output or Path(f"{name}.onnx")
    try:
        card = export_onnx(card_path(model_dir, name), target, opset)
    except (WeightsRefused, OSError, ValueError) as e:
        console.print(f"[red]cannot export {name}:[/] {e}", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"wrote {target}: {card.name} ({card.architecture} on {card.dataset}), input {card.input_shape}")
