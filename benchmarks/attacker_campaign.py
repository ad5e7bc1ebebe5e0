"""The attacker service's acceptance run: the black-box MNIST campaign through HTTP, end to end.

    .venv/bin/python benchmarks/attacker_campaign.py            # FGSM ε=0.3, S0=150, ρ=6, 9,850 evaluation images

Starts its own redis-server, a MNIST oracle (models/mnist.json), the attacker API and one worker (free
loopback ports, temporary directories), creates an oracle client, POSTs the campaign, follows it, and then
checks what the issue's "done when" asks:

- the transfer rate is within --tolerance (3 points) of the engine's in-process benchmark figure
  (benchmarks/blackbox_mnist.py, same configuration: 17.65% at ε = 0.3 when measured; pass
  --engine-json to read it from that script's --json-out instead);
- the queries the campaign reports equal the oracle's own count (its /metrics and its ledger);
- the samples' oracle labels equal what a direct query of the oracle returns, for every sample.

Every process is stopped at the end, on error and on Ctrl-C.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import typer

REPO = Path(__file__).resolve().parents[1]
BBRANGE = Path(sys.executable).parent / "bbrange"
ENGINE_TRANSFER_AT_03 = 0.1765  # benchmarks/blackbox_mnist.py, oracle mnist, ρ=6, λ=0.1, ε=0.3 (run of this issue)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} did not come up within {timeout:.0f}s")


def oracle_answered(oracle_url: str, client_id: str) -> int:
    text = httpx.get(oracle_url + "/metrics", timeout=10).text
    pattern = rf'^bbrange_oracle_inputs_answered_total\{{[^}}]*client="{re.escape(client_id)}"[^}}]*\}} (\S+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, flags=re.MULTILINE)))


def main(
    s0: int = typer.Option(150, help="|S0|"),
    rho: int = typer.Option(6, help="substitute epochs ρ"),
    eps: float = typer.Option(0.3, help="FGSM ε"),
    eval_size: int = typer.Option(9850, help="evaluation images (the test images after S0)"),
    train_epochs: int = typer.Option(10),
    model_dir: Path = typer.Option(REPO / "models"),
    engine_json: Path = typer.Option(None, help="blackbox_mnist.py --json-out file to compare with"),
    tolerance: float = typer.Option(0.03, help="allowed |service - engine| transfer difference"),
    json_out: Path = typer.Option(None),
) -> None:
    if "BBRANGE_DATA_DIR" not in os.environ and (REPO.parent / "shared" / "datasets" / "mnist").is_dir():
        os.environ["BBRANGE_DATA_DIR"] = str(REPO.parent / "shared" / "datasets")
    engine = ENGINE_TRANSFER_AT_03
    if engine_json is not None:
        runs = json.loads(engine_json.read_text())
        run = next(r for r in runs if r["oracle"] == "mnist" and not r.get("variant"))
        engine = next(t for t in run["transfer"] if t["eps"] == eps)["misclassified"]

    tmp = Path(tempfile.mkdtemp(prefix="bbrange-attacker-bench-"))
    processes: list[subprocess.Popen] = []

    def start(args: list[str], log: str, env: dict[str, str]) -> subprocess.Popen:
        p = subprocess.Popen(args, stdout=(tmp / log).open("wb"), stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        processes.append(p)
        return p

    def stop_all(*_: object) -> None:
        for p in reversed(processes):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(processes):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        redis_port, oracle_port, api_port = free_port(), free_port(), free_port()
        start([shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no"], "redis.log", dict(os.environ))
        admin = secrets.token_hex(16)
        env = {**os.environ, "BBRANGE_ADMIN_TOKEN": admin, "BBRANGE_ATTACK_REDIS_URL": f"redis://127.0.0.1:{redis_port}/1",
               "BBRANGE_ATTACK_DATA_DIR": str(tmp / "data"), "BBRANGE_ATTACK_METRICS_DIR": str(tmp / "metrics")}
        oracle_url, api_url = f"http://127.0.0.1:{oracle_port}", f"http://127.0.0.1:{api_port}"
        oracle = start([str(BBRANGE), "oracle", "serve", "--port", str(oracle_port), "--model-dir", str(model_dir),
                        "--model", "mnist", "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--device", "cpu",
                        "--log-level", "warning"], "oracle.log", env)
        api = start([str(BBRANGE), "attack", "serve", "--port", str(api_port), "--log-level", "warning"], "api.log", env)
        start([str(BBRANGE), "attack", "worker", "--name", "bench", "--log-level", "warning"], "worker.log", env)
        wait_http(oracle_url + "/readyz", oracle, "the oracle")
        wait_http(api_url + "/readyz", api, "the attacker API")
        created = httpx.post(oracle_url + "/v1/admin/clients", headers={"Authorization": f"Bearer {admin}"},
                             json={"name": "campaign", "budget": 100_000}).raise_for_status().json()
        client_id, api_key = created["client"]["client_id"], created["api_key"]
        spec = {
            "name": "done-when: FGSM eps=0.3, S0=150, rho=6",
            "target": {"oracle_url": oracle_url, "model": "mnist", "api_key": api_key},
            "dataset": "mnist",
            "initial_set": {"kind": "dataset", "split": "test", "offset": 0, "size": s0},
            "substitute": {"preset": "papernot-mnist", "rho": rho, "lam": 0.1, "training": {"epochs": train_epochs}},
            "crafting": {"method": "fgsm", "eps": eps},
            "evaluation": {"split": "test", "size": eval_size},
            "seed": 0,
        }
        print(f"oracle {oracle_url}, attacker API {api_url}, logs in {tmp}", flush=True)
        started = time.perf_counter()
        with httpx.Client(base_url=api_url, timeout=60) as client:
            cid = client.post("/attacks", json=spec).raise_for_status().json()["id"]
            print(f"campaign {cid} submitted", flush=True)
            seen, last_phase = 0, ""
            while True:
                record = client.get(f"/attacks/{cid}").raise_for_status().json()
                for e in record["epochs"][seen:]:
                    print(f"  ρ={e['rho']} |S|={e['set_size']} substitute accuracy {e['substitute_accuracy']:.2%} "
                          f"agreement {e['oracle_agreement']:.2%} ({e['wall_s']:.0f}s)", flush=True)
                seen = len(record["epochs"])
                if record["phase"] != last_phase:
                    last_phase = record["phase"]
                    print(f"  [{time.perf_counter() - started:6.0f}s] phase {last_phase}", flush=True)
                if record["state"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(2)
            wall = time.perf_counter() - started
            if record["state"] != "succeeded":
                sys.exit(f"campaign {record['state']}: {record.get('error')}")
            npz = client.get(f"/attacks/{cid}/samples.npz").raise_for_status()
            page = client.get(f"/attacks/{cid}/samples", params={"limit": 500}).raise_for_status().json()
            grid = client.get(f"/attacks/{cid}/samples.png").raise_for_status()
        answered = oracle_answered(oracle_url, client_id)
        ledger = httpx.get(f"{oracle_url}/v1/admin/clients/{client_id}",
                           headers={"Authorization": f"Bearer {admin}"}).raise_for_status().json()["used"]
        with np.load(io.BytesIO(npz.content)) as s:
            x_adv, after, before = s["x_adv"], s["label_after"], s["label_before"]
        other = httpx.post(oracle_url + "/v1/admin/clients", headers={"Authorization": f"Bearer {admin}"},
                           json={"name": "direct", "budget": 100_000}).raise_for_status().json()["api_key"]
        direct = []
        for i in range(0, len(x_adv), 1000):
            r = httpx.post(f"{oracle_url}/v1/models/mnist/predict", timeout=60,
                           content=_npy(x_adv[i : i + 1000]),
                           headers={"Authorization": f"Bearer {other}", "Content-Type": "application/x-npy",
                                    "Accept": "application/x-npy"}).raise_for_status()
            direct.append(np.load(io.BytesIO(r.content)))
        direct_labels = np.concatenate(direct)
        json_match = all(item["oracle_label_after"] == after[item["index"]] for item in page["items"])
        grid_path = tmp / "samples.png"
        grid_path.write_bytes(grid.content)
    finally:
        stop_all()

    res, q = record["results"], record["queries"]
    diff = res["transfer_rate"] - engine
    checks = {
        "transfer within tolerance of the engine": abs(diff) <= tolerance,
        "campaign queries == oracle /metrics == oracle ledger": q["total"] == answered == ledger,
        "npz labels == direct oracle labels": bool((direct_labels == after).all()),
        "JSON sample labels == npz labels": json_match,
    }
    print(f"\ncampaign {cid}: {record['state']} in {wall:.0f}s wall "
          f"(submit → succeeded; worker: {record['worker']})")
    print(f"  substitute accuracy {res['substitute_accuracy']:.2%}, oracle agreement {res['oracle_agreement']:.2%}")
    print(f"  transfer rate (oracle misclassifies, ε={eps}) {res['transfer_rate']:.2%} on {res['samples']} samples; "
          f"engine benchmark {engine:.2%}; difference {diff * 100:+.2f} points")
    print(f"  label changed {res['label_change_rate']:.2%}; mean L∞ {res['mean_linf']:.3f}, L2 {res['mean_l2']:.3f}, "
          f"L0 {res['mean_l0']:.2%}")
    print(f"  queries reported: labelling {q['labelling']}, agreement {q['agreement']}, evaluation {q['evaluation']}, "
          f"total {q['total']} (inputs sent {q['inputs_sent']}); oracle /metrics {answered}, oracle ledger {ledger}")
    print(f"  samples whose direct oracle label differs: {int((direct_labels != after).sum())} of {len(after)}; "
          f"label before unchanged on {float((before == after).mean()):.2%}")
    print(f"  grid picture: {grid_path}")
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    if json_out:
        json_out.write_text(json.dumps({"campaign": record, "wall_s": wall, "engine_transfer": engine,
                                        "oracle_answered": answered, "oracle_ledger_used": ledger,
                                        "checks": checks}, indent=1, default=str))
    if not all(checks.values()):
        raise typer.Exit(1)


def _npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


if __name__ == "__main__":
    typer.run(main)
