"""`bbrange attack …`: the attack engine from the command line, against a local oracle model card.

The oracle is wrapped in the label-only `InProcessOracle` before the attack sees it; the campaign
service does the same over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

from bbrange.attacker.engine import (
    DEFAULT_STEP_SIZE,
    FGSM,
    SUBSTITUTE_PRESETS,
    BlackBoxAttack,
    EpochReport,
    InProcessOracle,
    QueryCounter,
    SearchDomain,
    SubstituteConfig,
    distortion,
    jsma,
    run_blackbox_attack,
)
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import as_batch, resolve_device
from bbrange.shared.model_card import ModelCard, load_model

app = typer.Typer(help="The attack engine: substitute training, FGSM and JSMA.", no_args_is_help=True)

ModelCardOpt = Annotated[Path, typer.Option(help="oracle model card (JSON) beside its safetensors weights")]


def _load(card_file: Path, device: torch.device) -> tuple[torch.nn.Module, ModelCard]:
    model, card = load_model(card_file, device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, card


@app.command("presets")
def presets() -> None:
    """List the substitute presets and their layers."""
    for p in SUBSTITUTE_PRESETS.values():
        typer.echo(f"{p.name:18s} {p.dataset:6s} {p.layers}\n{'':25s}{p.source}")


@app.command("substitute")
def substitute(
    model_card: ModelCardOpt = Path("models/mnist.json"),
    s0: Annotated[int, typer.Option(help="|S0|: the first test images")] = 150,
    preset: str = "papernot-mnist",
    rho: Annotated[int, typer.Option(help="substitute epochs ρ_max")] = 6,
    lam: Annotated[float, typer.Option(help="λ, signed (see `bbrange attack run --help`)")] = DEFAULT_STEP_SIZE,
    train_epochs: int = 10,
    periodic_step: bool = False,
    reservoir: bool = False,
    kappa: int = 400,
    budget: Annotated[int | None, typer.Option(help="labelling query budget")] = None,
    eps: Annotated[float, typer.Option(help="FGSM ε for the transfer check")] = 0.3,
    holdout: Annotated[int | None, typer.Option(help="held-out test images after S0 (default: all)")] = None,
    device: str = "auto",
    data_dir: Annotated[Path | None, typer.Option(envvar="BBRANGE_DATA_DIR")] = None,
    json_out: Path | None = None,
) -> None:
    """Train a substitute against the oracle (labels only), then measure FGSM transfer on the other test images."""
    dev = resolve_device(device)
    model, card = _load(model_card, dev)
    counter = QueryCounter(InProcessOracle(model, card.input_shape, card.num_classes, dev))
    data = load_dataset(card.dataset, "test", data_dir)
    config = SubstituteConfig(preset=preset, substitute_epochs=rho, lam=lam, train_epochs=train_epochs,
                              periodic_step=periodic_step, reservoir=reservoir, kappa=kappa, query_budget=budget)

    def show(r: EpochReport) -> None:
        typer.echo(f"ρ={r.rho} |S|={r.set_size} queries={r.labelling_queries} accuracy={r.substitute_accuracy:.2%} "
                   f"agreement={r.oracle_agreement:.2%}")

    held = slice(s0, None if holdout is None else s0 + holdout)
    result = run_blackbox_attack(counter, data.x[:s0], data.x[held], data.y[held],
                                 BlackBoxAttack(config, FGSM(eps=eps)), device=dev, on_epoch=show)
    if result.report is None:
        typer.echo(f"stopped: {result.stop_reason}")
    else:
        typer.echo(f"FGSM ε={eps}: oracle misclassifies {result.report.misclassification_rate:.2%}; "
                   f"queries {counter.usage.by_phase}")
    if json_out:
        json_out.write_text(json.dumps({**(result.substitute.summary() if result.substitute else {}),
                                        "transfer": result.report and result.report.as_dict(),
                                        "queries": counter.usage.by_phase}, indent=1, default=float))


@app.command("jsma")
def jsma_command(
    model_card: ModelCardOpt = Path("models/mnist.json"),
    images: Annotated[int, typer.Option(help="the first N test images, each towards every other class")] = 10,
    theta: float = 1.0,
    upsilon: Annotated[float, typer.Option(help="maximum distortion Υ, a fraction of the features")] = 0.145,
    search_domain: Annotated[SearchDomain, typer.Option(help="Γ at the start: all features (the thesis) or the "
                                                              "movable ones (cleverhans)")] = "all",
    device: str = "auto",
    data_dir: Annotated[Path | None, typer.Option(envvar="BBRANGE_DATA_DIR")] = None,
) -> None:
    """White-box JSMA on the model itself (the thesis's setting)."""
    dev = resolve_device(device)
    model, card = _load(model_card, dev)
    data = load_dataset(card.dataset, "test", data_dir)
    k = card.num_classes
    idx = np.repeat(np.arange(images), k - 1)
    targets = np.array([t for y in data.y[:images] for t in range(k) if t != y])
    x = as_batch(data.x[idx], dev)
    result = jsma(model, x, torch.from_numpy(targets).to(dev), theta=theta, max_distortion=upsilon,
                  search_domain=search_domain)
    ok = result.success.cpu().numpy()
    d = distortion(x, result.x_adv)
    typer.echo(f"{len(x)} samples: success {ok.mean():.2%}, L0 {d.mean_l0(ok):.2%} (successful) "
               f"{d.mean_l0():.2%} (all)")
