"""Issue 21's goal, measured for both of the oracle's detectors, PRADA and Blacklight, alone and together.

    .venv/bin/python benchmarks/detection_goals.py                          # MNIST and GTSRB (~15 min on 2 cores)
    .venv/bin/python benchmarks/detection_goals.py --dataset mnist --quick  # 3 images × 300 queries, 2,000 benign

The goal: every HopSkipJump, Sign-OPT and RayS campaign against the MNIST and GTSRB oracles is flagged before its
100th query; the same attack spread over 100 API keys (a few dozen queries each) is flagged as fast, with the keys
linked; the same for JBDA, and for JBDA camouflaged with benign images. And on the benign side: at most 0.1% of
benign queries matched over at least 10,000 distinct test images from at least 100 clients, per dataset.

Per dataset (its oracle `models/{dataset}.safetensors`, its test set):

1. Attack streams, recorded in-process against the oracle (each oracle call's inputs and the oracle's labels):
   the engine's HopSkipJump (L2), Sign-OPT (L2) and RayS (L∞), untargeted, their defaults, on `--images` test
   images from index 5000 that the oracle labels correctly, all advanced together, `--budget` queries per image
   (blacklight_streams.decision_stream); JBDA λ=-0.1 (ρ=3, S0 = test images 0..149, the substitute training's
   labelling queries: S0's natural images first, then the Jacobian-augmented points), and the same camouflaged
   with 2 natural training images per attack query (`CamouflagedCounter`), recorded as benchmarks/detection.py
   records its campaigns (`Recorder`). The engine's agreement, evaluation and noise-baseline phases of a JBDA
   campaign are left out: they are the range's measurement of transfer, not the extraction.
2. Each stream from 1 key, and dealt round-robin over 100 keys (blacklight_streams.over_keys: each call's rows
   over the keys, each key's share one request), fed in order to PRADA (one state per key, as the oracle keeps
   it, `DetectorConfig()` defaults, the oracle's labels), to Blacklight (the oracle's own fingerprints and Lua
   script on a private redis-server, `BlacklightConfig()` defaults, a fresh store per run) and to both (a key is
   flagged at the earlier of its two flags). Per cell: the stream's query (1-based, counted over the whole attack)
   at which the first key was flagged, how many keys were flagged by the stream's end, and how many keys
   Blacklight linked to at least one other key (with the number of groups the links make of the keys).
   Goal: flagged at a query < 100; over 100 keys also every key linked (PRADA links nothing).
3. Benign: every test image once (MNIST 10,000, GTSRB 12,630) shared out among 100 clients, requests of 1-100
   inputs interleaved (blacklight_streams.benign_distinct), fed to both: Blacklight's share of queries matched
   (goal ≤ 0.1%) and clients flagged; PRADA has no per-query match: the clients it flagged, and for how many it
   computed its statistic W at all (it needs more than `min_distances` distances per client).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from blacklight_streams import Call, benign_distinct, blacklight_feed, decision_stream, groups_of, over_keys  # noqa: E402
from detection import Recorder  # noqa: E402
from detection_goals_report import (  # noqa: E402
    DETECTORS,
    GOAL_MATCHED,
    KEYS,
    BenignRow,
    Cell,
    Report,
    Timer,
    say,
    tables,
    verdict,
)
from detection_streams import prada_feed  # noqa: E402
from oracles import correctly_labelled, frozen, load_oracle_model  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from bbrange.attacker.engine import (  # noqa: E402
    FGSM,
    BlackBoxAttack,
    CallableOracle,
    CamouflagedCounter,
    InProcessOracle,
    QueryCounter,
    SubstituteConfig,
    run_blackbox_attack,
)
from bbrange.attacker.engine.query_attacks.base import QueryAttack  # noqa: E402
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump  # noqa: E402
from bbrange.attacker.engine.query_attacks.rays import RayS  # noqa: E402
from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT  # noqa: E402
from bbrange.oracle.detection.config import BlacklightConfig, DetectorConfig  # noqa: E402
from bbrange.shared.datasets import Dataset, DatasetUnavailable, load_dataset  # noqa: E402
from bbrange.shared.stack import RedisServer  # noqa: E402

SUBSTITUTE_PRESET = {"mnist": "papernot-mnist", "gtsrb": "gtsrb-substitute"}
JBDA_S0, JBDA_RHO, JBDA_LAM, CAMOUFLAGE = 150, 3, -0.1, 2.0
JBDA_EVAL = 100  # held-out images the campaign needs (agreement, evaluation): not part of the recorded stream


# --- streams -------------------------------------------------------------------------------------------------------

def decision_attacks(budget: int, images: int) -> dict[str, QueryAttack]:
    at = (budget,)
    return {"HopSkipJump L2": HopSkipJump(norm="l2", max_queries_per_image=budget, checkpoints=at, batch_size=images),
            "Sign-OPT L2": SignOPT(norm="l2", max_queries_per_image=budget, checkpoints=at, batch_size=images),
            "RayS L∞": RayS(norm="linf", max_queries_per_image=budget, checkpoints=at, batch_size=images)}


def jbda_stream(oracle: InProcessOracle, num_classes: int, test: Dataset, sub: SubstituteConfig,
                pool: np.ndarray | None = None, ratio: float = 0.0) -> list[Call]:
    """A JBDA campaign (detection.py's recording, `Recorder`): its labelling queries, in order, as sent."""
    rec = Recorder(oracle.label)
    inner = CallableOracle(rec, oracle.input_shape, num_classes)
    counter = (CamouflagedCounter(inner, pool, ratio, before=rec.before, seed=sub.seed) if pool is not None
               else QueryCounter(inner, before=rec.before))
    x_eval, y_eval = test.x[JBDA_S0 : JBDA_S0 + JBDA_EVAL], test.y[JBDA_S0 : JBDA_S0 + JBDA_EVAL]
    run_blackbox_attack(counter, test.x[:JBDA_S0], x_eval, y_eval, BlackBoxAttack(sub, FGSM(eps=0.3)))
    return [(x, y) for phase, x, y in rec.batches if phase == "labelling"]


# --- detectors -----------------------------------------------------------------------------------------------------

async def attack_cells(r: Redis, dataset: str, name: str, calls: list[Call], prada_config: DetectorConfig,
                       bl_config: BlacklightConfig, report: Report) -> None:
    total = sum(len(x) for x, _ in calls)
    for keys in KEYS:
        with Timer(report, f"{dataset} {name} {keys} key{'s' if keys > 1 else ''}: detectors"):
            requests = over_keys([x for x, _ in calls], keys)
            labels = over_keys([y for _, y in calls], keys)
            p_flags, _ = prada_feed(requests, labels, prada_config)
            b_flags, linked, match_rate, fed = await blacklight_feed(
                r, f"goals:{dataset}:{len(report.cells)}", dataset, requests, bl_config)
            assert fed == total
            senders = list(linked)
            n_linked = sum(1 for k in senders if any(o != k for o in linked[k]))
            groups = groups_of(senders, linked)
            both = {k: min(v for v in (p_flags.get(k), b_flags.get(k)) if v is not None)
                    for k in set(p_flags) | set(b_flags)}
            for detector, flags in zip(DETECTORS, (p_flags, b_flags, both), strict=True):
                first = min(flags.values()) if flags else None
                link = None if detector == "PRADA" or keys == 1 else n_linked
                ok, text = verdict(first, keys, link)
                report.cells.append(Cell(dataset, name, total, keys, detector, first, len(flags), link,
                                         None if link is None else groups, ok, text))
            cells = report.cells[-3:]
            say(f"  {name}, {total:,} queries, {keys} key{'s' if keys > 1 else ''}: Blacklight matched "
                f"{match_rate:.1%} of them; " + "; ".join(
                    f"{c.detector}: first flag at {c.first_flag if c.first_flag else '-'}, {c.flagged} flagged"
                    for c in cells) + (f"; {n_linked} keys linked, {groups} group(s)" if keys > 1 else ""))


async def benign_rows(r: Redis, dataset: str, test: Dataset, oracle: InProcessOracle, images: int, clients: int,
                      prada_config: DetectorConfig, bl_config: BlacklightConfig, seed: int, report: Report) -> None:
    n = len(test) if images <= 0 else min(images, len(test))
    x = np.asarray(test.x[:n], np.float32)
    say(f"\n  Benign: {n:,} distinct {dataset} test images, each once, {clients} clients, requests of 1-100 inputs")
    requests = benign_distinct(n, clients, np.random.default_rng(seed))
    with Timer(report, f"{dataset} benign: oracle labels"):
        y = oracle.label(x)
    with Timer(report, f"{dataset} benign: Blacklight"):
        b_flags, _, match_rate, queries = await blacklight_feed(
            r, f"goals:{dataset}:benign", dataset, [(c, x[idx]) for c, idx in requests], bl_config)
    with Timer(report, f"{dataset} benign: PRADA"):
        p_flags, states = prada_feed([(c, x[idx]) for c, idx in requests], [(c, y[idx]) for c, idx in requests],
                                     prada_config)
    with_w = [s.min_statistic for s in states.values() if s.min_statistic is not None]
    w_note = (f"W computed for {len(with_w)} of {len(states)} clients" + (f" (lowest {min(with_w):.3f})" if with_w
              else f": each sent ≤ {max(s.queries for s in states.values())} queries, W needs > "
                   f"{prada_config.min_distances} distances"))
    matched = int(round(match_rate * queries))
    report.benign += [
        BenignRow(dataset, n, clients, queries, "PRADA", None, len(p_flags), w_note, None),
        BenignRow(dataset, n, clients, queries, "Blacklight", match_rate, len(b_flags), f"{matched} queries matched",
                  match_rate <= GOAL_MATCHED),
        BenignRow(dataset, n, clients, queries, "both", match_rate, len(set(p_flags) | set(b_flags)),
                  "Blacklight's matches", match_rate <= GOAL_MATCHED),
    ]
    say(f"  Blacklight matched {matched} of {queries:,} queries ({match_rate:.3%}), flagged {len(b_flags)} of "
        f"{clients} clients; PRADA flagged {len(p_flags)} of {clients} clients ({w_note})")


# --- the run -------------------------------------------------------------------------------------------------------

async def run_dataset(r: Redis, dataset: str, oracle: InProcessOracle, num_classes: int, test: Dataset,
                      images: int, budget: int, benign_images: int, clients: int, train_epochs: int, seed: int,
                      prada_config: DetectorConfig, bl_config: BlacklightConfig, report: Report) -> None:
    say(f"\n## {dataset}")
    x, _ = correctly_labelled(oracle, test.x, test.y, 5000, images, candidates=4)
    if len(x) < images:
        say(f"  (only {len(x)} of {4 * images} candidate images from test index 5000 are labelled correctly)")
    streams: dict[str, list[Call]] = {}
    for name, attack in decision_attacks(budget, len(x)).items():
        with Timer(report, f"{dataset} {name}: recording"):
            streams[name] = decision_stream(oracle, attack, x, seed)
    sub = SubstituteConfig(preset=SUBSTITUTE_PRESET[dataset], substitute_epochs=JBDA_RHO, lam=JBDA_LAM, seed=seed,
                           train_epochs=train_epochs)
    with Timer(report, f"{dataset} JBDA: recording"):
        streams[f"JBDA λ={JBDA_LAM:g}"] = jbda_stream(oracle, num_classes, test, sub)
    with Timer(report, f"{dataset} JBDA camouflaged: recording"):
        pool = load_dataset(dataset, "train", download=False).x
        streams[f"JBDA λ={JBDA_LAM:g} camouflaged {CAMOUFLAGE:g}:1"] = jbda_stream(oracle, num_classes, test, sub,
                                                                                     pool, CAMOUFLAGE)
        del pool
    say(f"  streams recorded on {len(x)} images: " + ", ".join(
        f"{name} {sum(len(b) for b, _ in calls):,} queries in {len(calls)} calls" for name, calls in streams.items()))
    for name, calls in streams.items():
        await attack_cells(r, dataset, name, calls, prada_config, bl_config, report)
    await benign_rows(r, dataset, test, oracle, benign_images, clients, prada_config, bl_config, seed, report)


def main(
    datasets: list[str] = typer.Option(["mnist", "gtsrb"], "--dataset", help="Oracle and test set (repeat)"),
    images: int = typer.Option(10, help="Images each decision-based attack attacks (all advanced together)"),
    budget: int = typer.Option(1_000, help="Queries per image of each decision-based attack"),
    benign_images: int = typer.Option(0, help="Distinct test images of the benign run (0: the whole test set)"),
    clients: int = typer.Option(100, help="Benign clients"),
    train_epochs: int = typer.Option(10, help="Substitute training epochs per JBDA substitute epoch"),
    quick: bool = typer.Option(False, help="A smoke run: 3 images × 300 queries, 2,000 benign images"),
    seed: int = typer.Option(0, help="Seed of the attacks, the substitute, the camouflage and the benign order"),
    groups: bool = typer.Option(True, help="Blacklight's group rule (flag_groups): off, each key only by its own "
                                           "matches"),
    json_out: Path | None = typer.Option(None, help="Write the settings, cells, benign rows and timings here"),
) -> None:
    if quick:
        images, budget, benign_images = 3, 300, benign_images or 2_000
    unknown = [d for d in datasets if d not in SUBSTITUTE_PRESET]
    if unknown:
        sys.exit(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(SUBSTITUTE_PRESET)}")
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    device = torch.device("cpu")
    oracles: dict[str, tuple[InProcessOracle, int, Dataset]] = {}
    for dataset in dict.fromkeys(datasets):  # every model and test set first: a missing one fails before any work
        model, card = load_oracle_model(dataset, device)
        try:
            test = load_dataset(dataset, "test", download=False)
        except DatasetUnavailable as e:
            sys.exit(f"the {dataset} test set is missing (set BBRANGE_DATA_DIR): {e}")
        oracles[dataset] = (InProcessOracle(frozen(model), tuple(card["input_shape"]), card["num_classes"]),
                            card["num_classes"], test)
    prada_config, bl_config = DetectorConfig(), BlacklightConfig(flag_groups=groups)
    attacks = decision_attacks(budget, images)
    settings: dict[str, object] = {
        "datasets": list(oracles), "images": images, "budget_per_image": budget, "seed": seed,
        "attacks": {name: repr(a) for name, a in attacks.items()},
        "jbda": {"lam": JBDA_LAM, "rho": JBDA_RHO, "s0": f"test images 0..{JBDA_S0 - 1}",
                 "substitute": SUBSTITUTE_PRESET, "train_epochs": train_epochs, "camouflage_ratio": CAMOUFLAGE,
                 "camouflage_pool": "the training set", "stream": "the labelling queries"},
        "keys": list(KEYS), "benign_images": benign_images or "the whole test set", "benign_clients": clients,
        "prada": prada_config.model_dump(mode="json", exclude={"blacklight"}), "blacklight": bl_config.model_dump(),
    }
    say("# Detection goals (issue 21)")
    say(f"datasets {', '.join(oracles)}; decision-based attacks on {images} correctly labelled test images from "
        f"index 5000, {budget:,} queries per image, seed {seed}")
    for name, a in attacks.items():
        say(f"  {name}: {a!r}")
    say(f"JBDA: λ={JBDA_LAM:g}, ρ={JBDA_RHO}, S0 = test images 0..{JBDA_S0 - 1}, substitute {SUBSTITUTE_PRESET} "
        f"({train_epochs} epochs per ρ), FGSM ε=0.3 on {JBDA_EVAL} held-out images (its phases not in the stream); "
        f"camouflaged: {CAMOUFLAGE:g} natural training images per attack query")
    say(f"keys: {', '.join(map(str, KEYS))} (rows of each call dealt round-robin); benign: "
        f"{f'{benign_images:,}' if benign_images else 'every'} distinct test image(s), {clients} clients, "
        f"seed {seed}")
    say(f"PRADA: {json.dumps(settings['prada'])}")
    say(f"Blacklight: {bl_config.model_dump_json()}")
    report = Report(settings)

    async def run() -> None:
        with RedisServer() as server:
            r = Redis.from_url(server.url)
            try:
                say(f"redis-server {(await r.info('server'))['redis_version']} on a private port")
                for dataset, (oracle, num_classes, test) in oracles.items():
                    with Timer(report, f"{dataset} total"):
                        await run_dataset(r, dataset, oracle, num_classes, test, images, budget, benign_images, clients,
                                          train_epochs, seed, prada_config, bl_config, report)
            finally:
                await r.aclose()

    started = time.perf_counter()
    asyncio.run(run())
    report.seconds["total"] = round(time.perf_counter() - started, 1)
    say("\n" + tables(report))
    say(f"\ntotal {report.seconds['total']:.0f} s")
    if json_out:
        json_out.write_text(json.dumps({"settings": report.settings, "cells": [asdict(c) for c in report.cells],
                                        "benign": [asdict(b) for b in report.benign], "seconds": report.seconds},
                                       indent=1, ensure_ascii=False))


if __name__ == "__main__":
    typer.run(main)
