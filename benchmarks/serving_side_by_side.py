"""Serving side by side: our oracle against KServe's `ModelServer` (the anchor) and a bare uvicorn + uvloop
endpoint that runs the forward per request (the floor), in one run, on the same weights and the same Open
Inference Protocol V2 binary requests, with the load from ApacheBench (C, little CPU). One server process each
(but one row of ours).

Cells: a batch of 100 inputs from 1 client (labels/s), 1 input from 64 clients (requests/s), 1 input from 1
client (requests/s and p50). Our oracle runs three ways: defaults (dynamic batching, detection on), detection
off, batching off; and, beside the one-process rows, defaults with 2 worker processes behind the port. For our
oracle every cell checks the ledger: inputs charged == inputs answered.

    .venv/bin/python benchmarks/serving_side_by_side.py --duration-s 10 --json-out serving.json
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import torch
import typer

from bbrange.shared.datasets import load_dataset
from bbrange.shared.model_card import load_model, read_card
from bbrange.shared.oracle_admin import OracleAdmin
from bbrange.shared.stack import Stack, commands

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving.ab import AbResult, MachineLoad, run_ab, write_v2_body  # noqa: E402  (beside this file)
from serving.side_by_side_table import CELLS, Cell, markdown_table, raw_forward  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@dataclass(frozen=True)
class Server:
    name: str
    url: str  # the infer URL
    api_key: str | None = None  # ours only
    client_id: str | None = None


def _log_name(name: str) -> str:
    return name.replace(" ", "-").replace(",", "")


def labels_of(response: httpx.Response) -> np.ndarray:
    response.raise_for_status()
    split = response.headers.get("Inference-Header-Content-Length")
    if split is not None:
        return np.frombuffer(response.content[int(split):], dtype="<i8")
    return np.asarray(response.json()["outputs"][0]["data"], dtype=np.int64)


def used(admin: OracleAdmin, client_id: str) -> int:
    return admin.client(client_id).used


def settled(admin: OracleAdmin, client_id: str) -> int:
    """The client's charged inputs once the requests the warm-up left behind (ab -t stops without their
    answers) have been charged: two readings 0.5 s apart agree."""
    last = used(admin, client_id)
    while True:
        time.sleep(0.5)
        now = used(admin, client_id)
        if now == last:
            return now
        last = now


def quiet(most_s: float = 60.0, busy: float = 0.15) -> float:
    """Wait until the machine is idle (under `busy` of its cores over a second), at most `most_s`: a server's
    detector works off the response path and may still be busy with the previous cell's queries, which would
    slow the next cell, whichever server it measures. Returns the seconds waited."""
    started = time.perf_counter()
    while MachineLoad.now().busy_share > busy and time.perf_counter() - started < most_s:
        pass
    return round(time.perf_counter() - started, 1)


def measure(server: Server, cell: Cell, bodies: dict[int, tuple[Path, int]], duration_s: float, warmup_s: float,
            admin: OracleAdmin) -> dict[str, object]:
    waited = quiet()
    body, json_length = bodies[cell.batch]
    headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key else {}
    warm = run_ab(server.url, body, json_length, headers, cell.clients, seconds=warmup_s)
    # A run by count, sized from the warm-up: it ends when every request is answered, so the ledger is settled.
    requests = max(int(warm.requests_per_s * duration_s), 50)
    before = settled(admin, server.client_id) if server.client_id else 0
    result: AbResult = run_ab(server.url, body, json_length, headers, cell.clients, requests=requests)
    row: dict[str, object] = {**asdict(result), "labels_per_s": result.requests_per_s * cell.batch,
                              "waited_for_quiet_s": waited}
    if server.client_id:
        charged = used(admin, server.client_id) - before
        row.update(charged=charged, answered_inputs=result.answered * cell.batch,
                   ledger_ok=charged == result.answered * cell.batch)
    return row


def median_round(rows: list[dict[str, object]]) -> dict[str, object]:
    """The round with the median requests/s, with every round's figure beside it; the ledger must hold in all."""
    ordered = sorted(rows, key=lambda r: float(r["requests_per_s"]))  # type: ignore[arg-type]
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds_requests_per_s"] = [r["requests_per_s"] for r in rows]
    if "ledger_ok" in chosen:
        chosen["ledger_ok"] = all(bool(r["ledger_ok"]) for r in rows)
    chosen["waited_for_quiet_s"] = max(float(r["waited_for_quiet_s"]) for r in rows)  # type: ignore[arg-type]
    return chosen


@app.command()
def main(
    model_dir: Annotated[Path, typer.Option(help="Where the model card and weights are.")] = ROOT / "models",
    model: Annotated[str, typer.Option(help="The model served by every server.")] = "mnist",
    duration_s: Annotated[float, typer.Option(min=1, help="Seconds measured per cell.")] = 10.0,
    warmup_s: Annotated[float, typer.Option(min=1, help="Seconds of warm-up per cell (also sizes the run).")] = 2.0,
    kserve_python: Annotated[Path, typer.Option(help="Python of the KServe environment.")] = ROOT / ".venv-kserve"
    / "bin" / "python",
    redis_server: Annotated[str, typer.Option(help="The redis-server executable.")] = "redis-server",
    data_dir: Annotated[Path | None, typer.Option(envvar="BBRANGE_DATA_DIR", help="Datasets.")] = None,
    json_out: Annotated[Path | None, typer.Option(help="Write every measurement here as JSON.")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds over every server and cell; each cell's median.")] = 3,
) -> None:
    """Measure our oracle, KServe and the bare floor side by side, and print the README's table."""
    load_before = MachineLoad.now()
    card_file = (model_dir / f"{model}.json").resolve()
    card = read_card(card_file)
    images = np.ascontiguousarray(load_dataset(card.dataset, "test", data_dir).x[:200], dtype=np.float32)
    module, _ = load_model(card_file, torch.device("cpu"))
    expected = module(torch.from_numpy(images[:100])).argmax(1).numpy()
    py = str(Path(sys.executable))
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bbrange-serving-")))
        bodies = {n: write_v2_body(workdir, images[:n], "input") for n in (1, 100)}
        # Every server in its own process group, stopped with the run (and with this process if it is killed).
        processes = stack.enter_context(Stack(workdir, cwd=ROOT, own_session=True, die_with_parent=True,
                                              launcher=[str(Path(py).with_name("bbrange"))]))
        redis = processes.start_redis(directory=workdir, executable=redis_server)

        admin_token = secrets.token_urlsafe(24)
        env = commands.oracle_env(admin_token, redis_prefix="serving-bench")
        ours = {"ours, defaults": {}, "ours, detection off": {"BBRANGE_DETECTION_ENABLED": "false"},
                "ours, batching off": {"BBRANGE_DYNAMIC_BATCHING": "false"},
                "ours, defaults, 2 worker processes": {"BBRANGE_WORKERS": "2"}}
        servers: list[Server] = []
        admin: OracleAdmin | None = None
        for name, extra in ours.items():
            oracle = processes.start_oracle(card_file.parent, redis.url, name=name, env={**env, **extra},
                                            models=[model], log=workdir / f"{_log_name(name)}.log",
                                            ready_path="/readyz", ready_timeout_s=180.0)
            base = oracle.url
            if admin is None:
                admin = stack.enter_context(OracleAdmin(base, admin_token, timeout_s=30.0))
            created = admin.create_client(name.replace(",", ""), 10**12)
            servers.append(Server(name, f"{base}/v2/models/{model}/infer", created.api_key, created.client.client_id))
        assert admin is not None

        weights = workdir / "state.pt"
        torch.save(module.state_dict(), weights)
        shape = ",".join(str(v) for v in card.input_shape)
        kserve = processes.start_service(
            "kserve", lambda port: [str(kserve_python), str(ROOT / "benchmarks" / "serving_kserve.py"), "--port",
                                    str(port), "--name", model, "--architecture", card.architecture, "--weights",
                                    str(weights), "--shape", shape, "--classes", str(card.num_classes)],
            ready_path=f"/v2/models/{model}/ready", ready_timeout_s=180.0)
        servers.append(Server("KServe ModelServer", f"{kserve.url}/v2/models/{model}/infer"))
        floor = processes.start_service(
            "floor", lambda port: [py, str(ROOT / "benchmarks" / "serving_floor.py"), "--port", str(port), "--card",
                                   str(card_file)], ready_path="/", ready_timeout_s=180.0)
        servers.append(Server("uvicorn + uvloop, forward only", f"{floor.url}/v2/models/{model}/infer"))

        body, json_length = bodies[100]
        for server in servers:  # every server labels the batch as the model does
            headers = {"Inference-Header-Content-Length": str(json_length), "Content-Type": "application/octet-stream"}
            if server.api_key:
                headers["Authorization"] = f"Bearer {server.api_key}"
            got = labels_of(httpx.post(server.url, content=body.read_bytes(), headers=headers, timeout=30.0))
            if not np.array_equal(got, expected):
                raise RuntimeError(f"{server.name} answers other labels than the model")

        started = time.time()
        results: dict[str, dict[str, object]] = {
            "raw forward in-process": raw_forward(module, images, duration_s)}
        # Rounds interleave the servers, so that a slow minute of the machine hurts every server alike; each cell
        # reports its median round.
        runs: dict[str, dict[str, list[dict[str, object]]]] = {s.name: {c.key: [] for c in CELLS} for s in servers}
        for round_ in range(rounds):
            for server in servers:
                for cell in CELLS:
                    runs[server.name][cell.key].append(measure(server, cell, bodies, duration_s, warmup_s, admin))
                print(f"round {round_ + 1}, {server.name}: " + ", ".join(
                    f"{k} {v[-1]['requests_per_s']:,.0f} req/s" for k, v in runs[server.name].items()), flush=True)
        for server in servers:
            results[server.name] = {key: median_round(rows) for key, rows in runs[server.name].items()}
        load_after = MachineLoad.now()
    report = {"settings": {"duration_s": duration_s, "warmup_s": warmup_s, "rounds": rounds, "model": model,
                           "cpus": os.cpu_count(),
                           "torch_threads": torch.get_num_threads(), "started": started},
              "load_before": asdict(load_before), "load_after": asdict(load_after), "results": results}
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2))
    print(markdown_table(report))


if __name__ == "__main__":
    app()
