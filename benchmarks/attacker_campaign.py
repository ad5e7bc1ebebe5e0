"""The attacker service's acceptance run: the black-box MNIST campaign over HTTP beside the engine in-process.

    .venv/bin/python benchmarks/attacker_campaign.py              # FGSM ε=0.3, S0=150, ρ=6, λ=−0.1, seed 0
    .venv/bin/python benchmarks/attacker_campaign.py --seeds 3    # seeds 0, 1, 2

Starts a local range (redis-server, the MNIST oracle from models/mnist.json, the attacker API, one worker;
free loopback ports, a temporary directory), and for each seed:

- POSTs the campaign and follows it to the end;
- runs the same configuration in this process through the engine, exactly as benchmarks/blackbox_mnist.py
  does (an in-process label-only oracle on the same weights, the same substitute training and FGSM);
- checks what the issue's "done when" asks: the campaign's transfer rate is within --tolerance (3 points)
  of the engine's; the queries the campaign reports equal the oracle's own count (its /metrics and its
  ledger); the samples' oracle labels (npz and JSON pages) equal what a direct query of the oracle returns.

The engine's figure is measured in the same run rather than quoted, because it depends on the oracle's
weights. With the same seed the two paths compute the same floats, so the figures are equal, not merely close.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import typer
from blackbox_mnist import attack  # noqa: I001 - benchmarks/ is the script's directory
from oracles import MODEL_DIR
from rich.console import Console

from bbrange.attacker.campaigns.client import AttackerClient
from bbrange.attacker.campaigns.spec.builder import bbrange_target, campaign_spec, fgsm
from bbrange.attacker.campaigns.storage.records import CampaignRecord
from bbrange.attacker.engine import DEFAULT_STEP_SIZE, SubstituteConfig
from bbrange.local_range import LocalRange, RangeEndpoints
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import resolve_device
from bbrange.shared.oracle_admin import OracleAdmin
from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy

QUERIES_PER_CAMPAIGN = 40_000  # 9,600 labelling + 9,850 agreement + 9,850 evaluation, with room to spare


def oracle_answered(oracle_url: str, client_id: str) -> int:
    text = httpx.get(oracle_url + "/metrics", timeout=10).text
    pattern = rf'^bbrange_oracle_inputs_answered_total\{{[^}}]*client="{re.escape(client_id)}"[^}}]*\}} (\S+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, flags=re.MULTILINE)))


def run_campaign(client: AttackerClient, spec: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    cid = client.submit(spec).id
    print(f"campaign {cid} submitted", flush=True)
    seen, last_phase = 0, ""

    def show(record: CampaignRecord) -> None:
        nonlocal seen, last_phase
        for e in record.epochs[seen:]:
            print(f"  ρ={e.rho} |S|={e.set_size} substitute accuracy {e.substitute_accuracy:.2%} "
                  f"agreement {e.oracle_agreement:.2%} ({e.wall_s:.0f}s)", flush=True)
        seen = len(record.epochs)
        if record.phase.value != last_phase:
            last_phase = record.phase.value
            print(f"  [{time.perf_counter() - started:6.0f}s] phase {last_phase}", flush=True)

    record = client.follow(cid, on_progress=show, poll_s=2)
    return record.model_dump(mode="json"), time.perf_counter() - started


def direct_labels(endpoints: RangeEndpoints, api_key: str, x: np.ndarray) -> np.ndarray:
    out = []
    for i in range(0, len(x), 1000):
        r = httpx.post(f"{endpoints.oracle_url}/v1/models/mnist/predict", timeout=60, content=encode_npy(x[i : i + 1000]),
                       headers={"Authorization": f"Bearer {api_key}", "Content-Type": NPY_MEDIA_TYPE,
                                "Accept": NPY_MEDIA_TYPE}).raise_for_status()
        out.append(decode_npy(r.content))
    return np.concatenate(out)


def main(
    s0: int = typer.Option(150, help="|S0|: the first test images"),
    rho: int = typer.Option(6, help="substitute epochs ρ"),
    lam: float = typer.Option(DEFAULT_STEP_SIZE, help="λ, signed"),
    eps: float = typer.Option(0.3, help="FGSM ε"),
    eval_size: int = typer.Option(9850, help="evaluation images (the test images after S0)"),
    train_epochs: int = typer.Option(10),
    seeds: int = typer.Option(1, help="campaigns (seeds 0..n-1), each beside its engine run"),
    tolerance: float = typer.Option(0.03, help="allowed |campaign - engine| transfer difference"),
    json_out: Path = typer.Option(None),
) -> None:
    data = load_dataset("mnist", "test")
    held_out = np.arange(s0, s0 + eval_size)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bbrange-attacker-bench-") as tmp, \
            LocalRange(Path(tmp), MODEL_DIR, client_budget=QUERIES_PER_CAMPAIGN * seeds, device="cpu",
                       console=Console(stderr=True)) as endpoints:
        oracle_admin = OracleAdmin(endpoints.oracle_url, endpoints.admin_token)
        print(f"oracle {endpoints.oracle_url}, attacker API {endpoints.attacker_url}, logs in {tmp}/logs", flush=True)
        checker = oracle_admin.create_client("direct-check", eval_size * seeds)
        for seed in range(seeds):
            print(f"\n-- seed {seed}: campaign over HTTP --", flush=True)
            spec = campaign_spec(bbrange_target(endpoints.oracle_url, endpoints.api_key), s0=s0, rho=rho, lam=lam,
                                 train_epochs=train_epochs, crafting=fgsm(eps), eval_size=eval_size, seed=seed,
                                 name=f"done-when: FGSM eps={eps}, S0={s0}, rho={rho}, seed {seed}")
            before = oracle_answered(endpoints.oracle_url, endpoints.client_id)
            with AttackerClient(endpoints.attacker_url, endpoints.user_token, timeout_s=60) as client:
                record, wall = run_campaign(client, spec)
                if record["state"] != "succeeded":
                    sys.exit(f"campaign {record['state']}: {record.get('error')}")
                cid = record["id"]
                npz = client.samples_npz(cid)
                page = client.samples(cid, limit=500).model_dump(mode="json")
            answered = oracle_answered(endpoints.oracle_url, endpoints.client_id) - before
            with np.load(io.BytesIO(npz)) as s:
                x_adv, after = s["x_adv"], s["label_after"]
            direct = direct_labels(endpoints, checker.api_key, x_adv)

            print(f"\n-- seed {seed}: the engine in-process (benchmarks/blackbox_mnist.py) --", flush=True)
            config = SubstituteConfig(preset="papernot-mnist", substitute_epochs=rho, lam=lam,
                                      train_epochs=train_epochs, seed=seed)
            engine = attack("mnist", data, np.arange(s0), held_out, config, (eps,), resolve_device("cpu"),
                            f"the first {s0} test images")
            runs.append({"seed": seed, "campaign": record, "wall_s": wall, "engine": engine,
                         "oracle_answered": answered, "direct_mismatches": int((direct != after).sum()),
                         "json_page_match": all(i["oracle_label_after"] == after[i["index"]] for i in page["items"])})
        ledger = oracle_admin.client(endpoints.client_id).used
        oracle_admin.close()

    print(f"\nsettings: S0 = the first {s0} test images, ρ={rho}, λ={lam:+g}, {train_epochs} training epochs per ρ, "
          f"FGSM ε={eps}, evaluation on test images {s0}..{s0 + eval_size - 1}")
    checks: dict[str, bool] = {}
    for r in runs:
        res, q = r["campaign"]["results"], r["campaign"]["queries"]
        eng = r["engine"]["transfer"][0]["misclassification_rate"]
        eng_acc = r["engine"]["epochs"][-1]["substitute_accuracy"]
        diff = res["transfer_rate"] - eng
        same_epochs = [e["substitute_accuracy"] for e in r["campaign"]["epochs"]] == \
            [e["substitute_accuracy"] for e in r["engine"]["epochs"]]
        print(f"  seed {r['seed']}: campaign transfer {res['transfer_rate']:.2%} (substitute {res['substitute_accuracy']:.2%}, "
              f"{r['wall_s']:.0f}s) | engine {eng:.2%} (substitute {eng_acc:.2%}) | difference {diff * 100:+.2f} points; "
              f"per-epoch substitute accuracies {'identical' if same_epochs else 'differ'}")
        print(f"          queries reported {q['total']} (labelling {q['labelling']}, agreement {q['agreement']}, "
              f"evaluation {q['evaluation']}), oracle /metrics {r['oracle_answered']}; direct-query label "
              f"mismatches {r['direct_mismatches']} of {res['samples']}")
        checks[f"seed {r['seed']}: transfer within {tolerance:.0%} of the engine's"] = abs(diff) <= tolerance
        checks[f"seed {r['seed']}: campaign queries == oracle /metrics"] = q["total"] == r["oracle_answered"]
        checks[f"seed {r['seed']}: npz labels == direct oracle labels"] = r["direct_mismatches"] == 0
        checks[f"seed {r['seed']}: JSON sample labels == npz labels"] = r["json_page_match"]
    total = sum(r["campaign"]["queries"]["total"] for r in runs)
    checks["all campaigns' queries == the oracle ledger of their key"] = total == ledger
    print(f"  oracle ledger of the campaigns' key: {ledger} used; campaigns reported {total}")
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    if json_out:
        json_out.write_text(json.dumps({"runs": runs, "oracle_ledger_used": ledger, "checks": checks}, indent=1,
                                       default=str))
    if not all(checks.values()):
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
