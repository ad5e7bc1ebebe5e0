"""A decision-based campaign through HTTP, end to end: the local range (Redis, the oracle, the attacker API and one
worker as processes), one campaign of N test images with Q queries each, and what it cost.

Prints the wall time from submission to the final state, the campaign's queries per phase beside what the oracle
charged the key (they must be equal), the median distortion at each checkpoint and the success at fixed sizes beside
noise of the same size. Issue 20's goal: a 100-image, 1K-query HopSkipJump campaign in under 3 minutes on 2 cores.

    python benchmarks/query_campaign_http.py                        # hopskipjump, L2, MNIST, 100 images x 1,000
    python benchmarks/query_campaign_http.py --method rays --norm linf
    python benchmarks/query_campaign_http.py --model gtsrb          # the GTSRB oracle (trained if missing)
    python benchmarks/query_campaign_http.py --model gtsrb --onnx-custom
        # the GTSRB oracle exported to ONNX and imported as a model of the "custom" domain (no dataset behind it):
        # the campaign uploads its evaluation images (GTSRB test images, as uint8) with the spec
"""

from __future__ import annotations

import base64
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console

from bbrange.attacker.campaigns.client import AttackerClient
from bbrange.attacker.campaigns.spec.builder import bbrange_target, campaign_spec
from bbrange.local_range import LocalRange
from bbrange.shared.datasets import load_dataset
from bbrange.shared.model_card import ModelCard, card_path, read_card
from bbrange.shared.oracle_admin import OracleAdmin

console = Console()


def served_card(model: str, model_dir: Path, onnx_custom: bool) -> ModelCard:
    """The card of the model the campaign attacks: trained if missing; with `onnx_custom`, exported to ONNX and
    imported into the custom domain (as the owner of a model outside our datasets would) under `<model>-onnx-custom`."""
    if not card_path(model_dir, model).exists():
        from bbrange.oracle.models.training import train_oracle

        console.print(f"training the {model} oracle into {model_dir} (once)")
        train_oracle(model, model_dir)
    card = read_card(card_path(model_dir, model))
    if not onnx_custom:
        return card
    from bbrange.oracle.models.onnx_export import export_onnx
    from bbrange.oracle.models.onnx_import import ImportSpec, import_onnx

    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = Path(tmp) / f"{model}.onnx"
        export_onnx(card_path(model_dir, model), onnx_file)
        spec = ImportSpec(name=f"{model}-onnx-custom", dataset="custom", input_shape=card.input_shape,
                          class_names=card.class_names)
        return import_onnx(onnx_file.read_bytes(), spec, model_dir, source=onnx_file.name, replace=True)


def custom_sections(card: ModelCard, images_from: str, images: int) -> dict[str, Any]:
    """The spec's domain and uploaded images for a custom-domain model: test images of `images_from`, as uint8."""
    test = load_dataset(images_from, "test")
    x = np.round(test.x[: images + 20] * 255).astype(np.uint8)

    def b64(write: Any) -> str:
        buf = io.BytesIO()
        write(buf)
        return base64.b64encode(buf.getvalue()).decode()

    return {"dataset": "custom",
            "domain": {"input_shape": list(card.input_shape), "num_classes": card.num_classes,
                       "class_names": card.class_names},
            "initial_set": {"kind": "upload", "npy_base64": b64(lambda f: np.save(f, x[images:]))},
            "evaluation": {"source": {"kind": "upload",
                                      "npz_base64": b64(lambda f: np.savez(f, x=x[:images], y=test.y[:images]))}}}


def main(method: str = typer.Option("hopskipjump", help="A decision-based attack: hopskipjump, sign_opt, rays"),
         norm: str = typer.Option("l2", help="l2 or linf (as the attack supports)"),
         images: int = typer.Option(100, help="Evaluation images attacked (the test images after S0)"),
         queries: int = typer.Option(1_000, help="Queries per image"),
         model: str = typer.Option("mnist", help="The oracle's model: mnist or gtsrb (trained if missing)"),
         onnx_custom: bool = typer.Option(False, help="Attack the model exported to ONNX and imported into the "
                                                      "custom domain, with uploaded images"),
         model_dir: Path = typer.Option(Path("models"), help="Where the oracle's models are"),
         device: str = typer.Option("cpu")) -> None:
    card = served_card(model, model_dir, onnx_custom)
    checkpoints = [c for c in (100, 200, 500, 1_000, 2_000, 5_000, 10_000) if c <= queries]
    crafting = {"method": method, "norm": norm, "max_queries_per_image": queries, "checkpoints": checkpoints}
    sections = custom_sections(card, model, images) if onnx_custom else {"dataset": card.dataset}
    console.print(f"{method} {norm}, {card.name} ({card.format} on {card.dataset}, input {list(card.input_shape)}), "
                  f"{images} test images x {queries:,} queries, one worker, device {device}")
    with tempfile.TemporaryDirectory() as workdir, \
            LocalRange(Path(workdir), model_dir, workers=1, device=device, console=console,
                       client_budget=images * (queries + 10) + 10_000) as endpoints:
        spec = campaign_spec(bbrange_target(endpoints.oracle_url, endpoints.api_key, card.name), crafting=crafting,
                             eval_size=images, **sections)
        with AttackerClient(endpoints.attacker_url, endpoints.user_token) as client:
            started = time.perf_counter()
            record = client.follow(client.submit(spec).id, poll_s=0.5)
            wall = time.perf_counter() - started
        with OracleAdmin(endpoints.oracle_url, endpoints.admin_token) as oracle:
            charged = oracle.client(endpoints.client_id).used
    q = record.queries
    console.print(f"state {record.state.value}; wall from submission to the end {wall:.1f} s")
    console.print(f"queries: agreement {q.agreement}, attack {q.attack}, baseline {q.baseline}, total {q.total}; "
                  f"the oracle charged {charged} ({'equal' if charged == q.total else 'NOT EQUAL'})")
    results = record.results.model_dump() if record.results is not None else {}
    console.print(f"the oracle's clean accuracy on these images {results.get('clean_accuracy') or 0:.2%}")
    curve = results.get("distortion_by_queries") or {}
    for at, median in zip(curve.get("queries", []), curve.get("median", []), strict=False):
        console.print(f"  median {curve.get('norm', norm).upper()} at {at:>6,} queries: {median:.3f}")
    for point in (results.get("success_by_size") or {}).get("points", []):
        console.print(f"  success at {curve.get('norm', norm).upper()} ≤ {point['size']:g}: {point['success_rate']:.2%}"
                      f" (random noise of that size {point['noise_rate'] or 0:.2%})")
    console.print(f"success {results.get('transfer_rate') or 0:.2%}")
    if (method, card.name, images, queries) == ("hopskipjump", "mnist", 100, 1_000):
        console.print(f"goal (issue 20): under 180 s, {'met' if wall < 180 else 'missed'} at {wall:.1f} s")


if __name__ == "__main__":
    typer.run(main)
