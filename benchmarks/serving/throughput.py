"""One run of the throughput benchmark: the model in-process and exported as ONNX beside it, a private Redis and
two oracles (dynamic batching on and off) from the stack harness, then every measurement, then the report."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import torch

from bbrange.oracle.models.onnx_export import torch_to_onnx
from bbrange.oracle.models.onnx_import import ImportSpec, import_onnx
from bbrange.oracle.serving.backend_onnx import OnnxBackend
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import as_batch, resolve_device
from bbrange.shared.model_card import load_model, read_card
from bbrange.shared.stack import Service, Stack, commands
from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy

from .comparison import Server, side_by_side
from .console import console
from .forwards import raw_forward
from .generators import run_cell, sequential_latency
from .load import Cell, ClientKind, Totals
from .throughput_report import Throughput, report

ROOT = Path(__file__).resolve().parents[2]


def server_probe(env: dict[str, str]) -> dict[str, object]:
    """What the server process will see, from a child with the server's environment: torch threads and
    which event loop / HTTP parser uvicorn's "auto" will pick."""
    code = (
        "import importlib.util as u, json, torch, uvicorn;"
        "print(json.dumps({'threads': torch.get_num_threads(), 'interop': torch.get_num_interop_threads(),"
        "'uvloop': u.find_spec('uvloop') is not None, 'httptools': u.find_spec('httptools') is not None,"
        "'uvicorn': uvicorn.__version__}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    probe: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return probe


def bbrange_executable() -> str:
    beside = Path(sys.executable).with_name("bbrange")
    if beside.exists():
        return str(beside)
    found = shutil.which("bbrange")
    if found is None:
        raise RuntimeError("cannot find the bbrange command: run this with the project's venv python")
    return found


def default_data_dir() -> Path | None:
    if os.environ.get("BBRANGE_DATA_DIR"):
        return Path(os.environ["BBRANGE_DATA_DIR"])
    beside = ROOT.parent / "shared" / "datasets"
    return beside if beside.is_dir() else None


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so the same cleanup runs as for Ctrl-C."""
    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(model_dir: Path, card_file: Path, redis_server: str, model: str, duration_s: float, warmup_s: float,
        device: str, batch_sizes: list[int], concurrency: list[int], client: ClientKind,
        torch_threads: int | None, data_dir: Path | None, json_out: Path | None,
        startup_timeout_s: float, many: int, batch_delay_ms: float | None) -> None:
    with terminate_on_sigterm(), contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bbrange-bench-")))

        # ---- the model in-process, and the inputs (MNIST/GTSRB test images, the card's dataset)
        torch_device = resolve_device(device)
        card = read_card(card_file)
        dataset = load_dataset(card.dataset, "test", data_dir or default_data_dir())
        need = max(batch_sizes)
        images = np.ascontiguousarray(dataset.x[: max(need * 4, 400, many)], dtype=np.float32)
        bodies = {b: [encode_npy(images[(i * b) % (len(images) - b + 1):][:b]) for i in range(4)] for b in batch_sizes}

        server_env = dict(os.environ)
        if torch_threads is not None:
            server_env["OMP_NUM_THREADS"] = server_env["MKL_NUM_THREADS"] = str(torch_threads)
        probe = server_probe(server_env)
        torch.set_num_threads(int(probe["threads"]))  # the server's own count, whatever set it
        module, card = load_model(card_file, torch_device)

        # ---- the same model exported as ONNX and imported beside it, for ONNX Runtime vs torch
        served_dir = workdir / "models"
        served_dir.mkdir()
        for f in (card_file, model_dir / card.weights_file):
            shutil.copy(f, served_dir / f.name)
        onnx_name = f"{model}-onnx"
        console.print(f"[dim]exporting {model} as ONNX and importing it as {onnx_name} …[/]")
        cpu_module, _ = load_model(card_file, torch.device("cpu"))
        import_onnx(torch_to_onnx(cpu_module, card.input_shape), ImportSpec(name=onnx_name, dataset=card.dataset),
                    served_dir, data_dir=data_dir or default_data_dir(), device=torch_device)
        onnx_backend, _ = OnnxBackend.open(served_dir / f"{onnx_name}.json", torch_device)

        # ---- redis and the oracle, each on a free loopback port. Each child in its own process group, which
        # the harness signals whole; and it dies with the benchmark even if the benchmark is killed (SIGKILL).
        processes = stack.enter_context(Stack(workdir, env=server_env, launcher=[bbrange_executable()], cwd=ROOT,
                                              own_session=True, die_with_parent=True, stop_grace_s=10.0))
        redis = processes.start_redis(directory=workdir, executable=redis_server)
        admin_token = secrets.token_urlsafe(24)
        oracle_settings = commands.oracle_env(admin_token, redis_prefix=f"bench:{secrets.token_hex(4)}")
        if batch_delay_ms is not None:
            oracle_settings["BBRANGE_BATCH_MAX_DELAY_MS"] = str(batch_delay_ms)

        def start_oracle(name: str, log: str, settings: dict[str, str]) -> Service:
            return processes.start_oracle(served_dir, redis.url, name=name, log=workdir / log, env=settings,
                                          models=[model, onnx_name], device=device, host="127.0.0.1", ready_path=None)

        # The same server without dynamic batching, on the same Redis and key prefix (one client for both).
        off_oracle = start_oracle("the oracle without batching", "oracle-off.log",
                                  {**oracle_settings, "BBRANGE_DYNAMIC_BATCHING": "false"})
        on_oracle = start_oracle("the oracle", "oracle.log", oracle_settings)
        base_url = on_oracle.url
        console.print(f"[dim]starting redis-server :{redis.port} and the oracle :{on_oracle.port} …[/]")

        try:
            on_oracle.wait_ready("/readyz", startup_timeout_s, interval_s=0.2)
            off_oracle.wait_ready("/readyz", startup_timeout_s, interval_s=0.2)
            created = httpx.post(f"{base_url}/v1/admin/clients", json={"name": "throughput-bench", "budget": 10**12},
                                 headers={"Authorization": f"Bearer {admin_token}"}, timeout=10.0)
            created.raise_for_status()
            api_key = created.json()["api_key"]
            headers = {"Authorization": f"Bearer {api_key}", "Content-Type": NPY_MEDIA_TYPE, "Accept": NPY_MEDIA_TYPE}
            path = f"/v1/models/{model}/predict"
            totals = Totals()

            # ---- served labels must be the in-process labels
            check = images[:need]
            r = httpx.post(base_url + path, content=encode_npy(check), headers=headers, timeout=60.0)
            r.raise_for_status()
            totals.add(need)
            with torch.inference_mode():
                local = module(as_batch(check, torch_device)).argmax(1).cpu().numpy()
            mismatches = int((decode_npy(r.content) != local).sum())

            # ---- per batch size: the served cells bracketed by two raw halves (before and after), so the
            # ratio compares figures taken at the same time and drift in the machine's speed hurts less
            raw: dict[int, float] = {}
            raw_spread: dict[int, tuple[float, float]] = {}
            cells: list[Cell] = []
            for b in batch_sizes:
                console.print(f"[dim]batch {b}: raw forward …[/]")
                before = raw_forward(module, images[:b], torch_device, warmup_s, duration_s / 2)
                for c in concurrency:
                    console.print(f"[dim]batch {b}: {c} client(s) over HTTP …[/]")
                    cells.append(run_cell(client, base_url, headers, path, bodies[b], b, c, warmup_s, duration_s,
                                          on_oracle.pid, redis.pid, model, totals))
                console.print(f"[dim]batch {b}: raw forward again …[/]")
                after = raw_forward(module, images[:b], torch_device, warmup_s, duration_s / 2)
                raw[b], raw_spread[b] = (before + after) / 2, (before, after)

            console.print("[dim]single-input latency, 1 client, sequential …[/]")
            lat = sequential_latency(base_url, headers, path, bodies[1] if 1 in bodies else [encode_npy(images[:1])],
                                     warmup_s, duration_s, totals)

            on = Server("batching on", base_url, on_oracle.pid)
            off = Server("batching off", off_oracle.url, off_oracle.pid)
            compared = side_by_side(client, on, off, redis.pid, api_key, model, onnx_name, module, onnx_backend,
                                    images, torch_device, many, warmup_s, duration_s, totals)

            usage = httpx.get(f"{base_url}/v1/usage", headers={"Authorization": f"Bearer {api_key}"},
                              timeout=10.0).json()
        except Exception:
            console.print(f"[red]oracle log (tail):[/]\n{on_oracle.process.log_tail()}")
            raise

        report(Throughput(
            card=card, module=module, torch_device=torch_device, probe=probe, torch_threads=torch_threads,
            batch_delay_ms=batch_delay_ms, model=model, onnx_name=onnx_name, onnx_device=str(onnx_backend.device),
            redis_port=redis.port, batch_sizes=batch_sizes, concurrency=concurrency, duration_s=duration_s,
            warmup_s=warmup_s, client=client, many=many, need=need, mismatches=mismatches, usage=usage, totals=totals,
            cells=cells, raw=raw, raw_spread=raw_spread, lat=lat, compared=compared, on=on, off=off), json_out)
