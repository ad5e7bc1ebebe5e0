"""The adaptive attacker against Blacklight: a decision-based attack with and without the evasion option
(query_attacks/evasion.py: every query through a random transformation), each query fed to the oracle's own
Blacklight, and the bad-query figure of Debenedetti, Carlini & Tramèr ("Evading Black-box Classifiers Without
Breaking Eggs", SaTML 2024): the distortion reached after 100 / 500 / 1,000 flagged ("bad") queries.

    .venv/bin/python benchmarks/detection_adaptive.py      # ~4 min on 2 cores
    .venv/bin/python benchmarks/detection_adaptive.py --attack rays
    .venv/bin/python benchmarks/detection_adaptive.py --attack signopt --variant none --variant noise:0.01 \
        --variant noise:0.02 --variant brightness:0.05

The engine's HopSkipJump (untargeted L2, its defaults) or RayS (L∞) on N MNIST test images from --offset (those
the `mnist` LeNet oracle labels correctly; in-process `InProcessOracle`), every image advanced together; every
oracle call is fed, in order, as one request of one client to Blacklight (`BlacklightConfig()` defaults, a real
redis-server, a fresh key prefix per variant: nothing matches across variants). Per variant: success (an
adversarial found) and the median distortion (of the inputs the oracle answered: with an evasion, the
transformed ones, its own distortion included) at equal queries per image, the share of queries matched, the
account's query at which the flag rule fires, and the median distortion after 100 / 500 / 1,000 matched queries
of an image (an image with fewer: what it reached in the end). With an evasion, HopSkipJump probes its gradient
at least the transformation's size away (`Evasion.probe_radius`); "probes-only:noise:0.02" is that adaptation with
the queries sent untransformed, to tell its share from the transformation's. The strengths were chosen on test images from
index 7000 (`--offset 7000`), disjoint from the reported ones (index 5000 on).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from adaptive_runs import Run, after_bad, detected_run  # noqa: E402
from blacklight_streams import Feeder  # noqa: E402
from oracles import frozen, load_oracle_model  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from bbrange.attacker.engine import InProcessOracle  # noqa: E402
from bbrange.attacker.engine.query_attacks.base import QueryAttack  # noqa: E402
from bbrange.attacker.engine.query_attacks.evasion import Evasion  # noqa: E402
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump  # noqa: E402
from bbrange.attacker.engine.query_attacks.rays import RayS  # noqa: E402
from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT  # noqa: E402
from bbrange.oracle.detection.config import BlacklightConfig  # noqa: E402
from bbrange.shared.datasets import load_dataset  # noqa: E402
from bbrange.shared.stack import RedisServer  # noqa: E402

BAD = (100, 500, 1_000)
VARIANTS = ["none", "probes-only:noise:0.02", "brightness:0.05", "noise:0.01", "noise:0.02"]


def evasion_of(variant: str) -> tuple[Evasion | None, bool]:
    """The variant's evasion, and whether its queries are transformed ("probes-only:...": HopSkipJump's probe
    radius adapted to that evasion, the queries sent as they are: what the adaptation alone does to Blacklight)."""
    if variant == "none":
        return None, True
    transform, _, strength = variant.removeprefix("probes-only:").partition(":")
    return Evasion(transform, float(strength)), not variant.startswith("probes-only:")  # type: ignore[arg-type]


def build(attack: str, budget: int, images: int) -> QueryAttack:
    checkpoints = tuple(sorted({min(c, budget) for c in (500, 1_000, budget)}))
    if attack == "rays":
        return RayS(max_queries_per_image=budget, checkpoints=checkpoints, batch_size=images)
    if attack == "signopt":
        return SignOPT(norm="l2", max_queries_per_image=budget, checkpoints=checkpoints, batch_size=images)
    return HopSkipJump(norm="l2", max_queries_per_image=budget, checkpoints=checkpoints, batch_size=images)


def row(run: Run, seconds: float) -> str:
    r = run.result
    at = " | ".join(f"{r.success.mean():.0%}, {np.median(r.at_checkpoints[:, k]):.3f}"
                    for k in range(len(r.checkpoints)))
    flagged = f"{run.flagged_at:,}" if run.flagged_at is not None else "never"
    bad = " | ".join(f"{after_bad(run, b):.3f}" for b in BAD)
    return (f"| {run.name} | {at} | {run.matched.mean():.1%} ({int(run.matched.sum()):,} of {len(run.matched):,}) "
            f"| {flagged} | {bad} | {seconds:.0f} s |")


def main(attack: str = typer.Option("hopskipjump", help="hopskipjump (L2), signopt (L2) or rays (L∞)"),
         images: int = typer.Option(10, help="MNIST test images attacked"),
         budget: int = typer.Option(2_000, help="Queries per image"),
         offset: int = typer.Option(5000, help="First test index (strengths were chosen on 7000 on)"),
         variant: list[str] = typer.Option(VARIANTS, help="none, transform:strength (brightness, noise), or "
                                                         "probes-only:transform:strength"),
         seed: int = 0) -> None:
    if attack not in ("hopskipjump", "signopt", "rays"):
        raise typer.BadParameter("attack: hopskipjump, signopt or rays")
    torch.set_num_threads(1)
    config = BlacklightConfig()
    model, card = load_oracle_model("mnist", torch.device("cpu"))
    oracle = InProcessOracle(frozen(model), tuple(card["input_shape"]), card["num_classes"])
    test = load_dataset("mnist", "test", download=False)
    x_all, y_all = np.asarray(test.x[offset : offset + 4 * images], np.float32), test.y[offset : offset + 4 * images]
    x = x_all[np.flatnonzero(oracle.label(x_all) == y_all)[:images]]
    base = build(attack, budget, len(x))
    print(f"attack: {base.name} {base.norm.upper()} untargeted, its defaults; {len(x)} images from test index {offset} "
          f"(labelled correctly by the mnist oracle), {budget:,} queries each, all images advanced together; seed "
          f"{seed}\nBlacklight: {config.model_dump_json()}; flag rule: {config.flag_matches} matches within "
          f"{config.flag_window} of the account's queries; one account, one request per oracle call")

    async def run() -> None:
        with RedisServer() as server:
            r = Redis.from_url(server.url)
            try:
                norm = base.norm.upper()
                checks = " | ".join(f"success, median {norm} @{c:,}/image" for c in base.checkpoints)
                bad = " | ".join(f"median {norm} after {b:,} bad" for b in BAD)
                print(f"\n| evasion | {checks} | queries matched | flagged at query | {bad} | time |")
                print("| --- " * (4 + len(base.checkpoints) + len(BAD)) + "|")
                for i, name in enumerate(variant):
                    started = time.perf_counter()
                    evasion, transform = evasion_of(name)
                    done = await detected_run(name, replace(base, evasion=evasion), oracle, x, seed,
                                              Feeder(r, f"adaptive{i}", config), config, transform)
                    print(row(done, time.perf_counter() - started), flush=True)
            finally:
                await r.aclose()

    asyncio.run(run())


if __name__ == "__main__":
    typer.run(main)
