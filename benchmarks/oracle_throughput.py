"""Oracle throughput: labels per second served over HTTP (binary .npy) against the model's raw forward.

Starts its own redis-server and `bbrange oracle serve` on free loopback ports, creates one client with
a budget for the whole run, then for each batch size measures

  * the raw in-process forward (torch.inference_mode, argmax included, same torch threads as the server),
  * labels/s served over HTTP with 1 and 8 concurrent clients (each cell: warm-up, then a fixed duration),

and finally the latency of single-input requests (1 client, sequential). Everything it started is stopped
on exit, error or Ctrl-C.

    .venv/bin/python benchmarks/oracle_throughput.py                   # defaults: mnist, 10 s per cell
    .venv/bin/python benchmarks/oracle_throughput.py --duration-s 3    # a quick look

The load generator runs on the same machine, so it takes CPU from the server; its CPU use is measured
and printed beside each cell.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from serving.console import console  # noqa: I001 - benchmarks/ is the script's directory
from serving.load import ClientKind
from serving.throughput import run

ROOT = Path(__file__).resolve().parent.parent
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main(
    model_dir: Annotated[Path, typer.Option(
        "--model-dir", help="Where the model cards and weights are.")] = ROOT / "models",
    model: Annotated[str, typer.Option("--model", help="Model to serve and measure.")] = "mnist",
    duration_s: Annotated[float, typer.Option("--duration-s", min=0.5, help="Measured seconds per cell.")] = 10.0,
    warmup_s: Annotated[float, typer.Option("--warmup-s", min=0.0, help="Warm-up seconds before each cell.")] = 2.0,
    device: Annotated[str, typer.Option(
        "--device", help="auto, cpu or cuda (server and in-process alike).")] = "auto",
    batch_sizes: Annotated[list[int], typer.Option(
        "--batch", min=1, max=1024, help="Batch sizes (repeatable).")] = [1, 100, 1000],  # noqa: B006
    concurrency: Annotated[list[int], typer.Option(
        "--concurrency", min=1, help="Concurrent clients (repeatable).")] = [1, 8],  # noqa: B006
    client: Annotated[ClientKind, typer.Option(
        "--client", help="Load generator: one asyncio loop, or one thread per client.")] = ClientKind.asyncio,
    torch_threads: Annotated[int | None, typer.Option(
        "--torch-threads", min=1,
        help="Set OMP_NUM_THREADS for the server and the in-process forward (default: torch's own default).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Dataset directory (default: $BBRANGE_DATA_DIR, else ../shared/datasets).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results here as JSON.")] = None,
    many: Annotated[int, typer.Option(
        "--many", min=2, help="Concurrent single-input clients in the side-by-side comparison.")] = 64,
    batch_delay_ms: Annotated[float | None, typer.Option(
        "--batch-delay-ms", help="BBRANGE_BATCH_MAX_DELAY_MS of the batching server (default: its default).")] = None,
    startup_timeout_s: Annotated[float, typer.Option(
        "--startup-timeout-s", help="How long to wait for /readyz.")] = 120.0,
) -> None:
    """Measure the oracle's served labels/s against the raw forward, and single-input latency."""
    model_dir = model_dir.resolve()
    card_file = model_dir / f"{model}.json"
    if not card_file.exists():
        raise typer.BadParameter(f"no model card {card_file}; train one with `bbrange oracle train`",
                                 param_hint="--model")
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        console.print("[red]redis-server is not on PATH[/]")
        raise typer.Exit(2)

    try:
        run(model_dir, card_file, redis_server, model, duration_s, warmup_s, device, batch_sizes, concurrency,
             client, torch_threads, data_dir, json_out, startup_timeout_s, many, batch_delay_ms)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the oracle and redis-server were stopped[/]")
        raise typer.Exit(130) from None


if __name__ == "__main__":
    app()
