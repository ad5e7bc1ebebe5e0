"""One decision-based attack run for benchmarks/detection_adaptive.py: the engine's attack (with or without the
adaptive attacker's evasion) against an in-process oracle, every query it sends recorded with its image and its
distortion where the oracle answered adversarial, then fed in order to the oracle's Blacklight (blacklight_streams'
`Feeder`: the detector's own fingerprints and Lua script on a real Redis) as one client, one request per call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from blacklight_streams import Feeder

from bbrange.attacker.engine import InProcessOracle
from bbrange.attacker.engine.query_attacks.base import QueryAttack
from bbrange.attacker.engine.query_attacks.budget import DecisionResult, PerImageQueries, distances
from bbrange.oracle.detection.config import BlacklightConfig

CLIENT = "attacker"


class RecordingQueries(PerImageQueries):
    """`PerImageQueries` that also notes, per query sent, its image and the distortion of what the oracle answered
    adversarial (inf otherwise). The label function (wrapped by the caller) sees the same rows, in the same order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows: list[np.ndarray] = []  # image index per query sent
        self.adv: list[np.ndarray] = []  # whether the oracle answered it adversarial
        self.sent: list[np.ndarray] = []  # the inputs the oracle answered, in order

    def label_sent(self, x: np.ndarray, label: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        self.sent.append(np.asarray(x, np.float32).copy())
        return label(x)

    def ask(self, images: np.ndarray, x: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.int64)
        sent = self.within_budget(images)
        answer = super().ask(images, x)
        self.rows.append(images[sent])
        self.adv.append(answer[sent])
        return answer


@dataclass(frozen=True)
class Run:
    name: str
    result: DecisionResult
    image: np.ndarray  # (Q,) the image of each query, in the order sent
    distortion: np.ndarray  # (Q,) the best distortion of its image once the query was answered (inf: none yet)
    matched: np.ndarray  # (Q,) bool: Blacklight matched it
    flagged_at: int | None  # the account's query at which the flag rule fired (None: never)


def attack_run(name: str, attack: QueryAttack, oracle: InProcessOracle, x: np.ndarray, seed: int,
               transform: bool = True) -> tuple[DecisionResult, RecordingQueries]:
    """The attack (untargeted) on x, every image advanced together; `transform` False: the attack adapts its
    probes to its evasion (HopSkipJump's probe radius) but the queries are sent untransformed (the ablation)."""
    clean = oracle.label(x)
    queries: RecordingQueries

    def label(batch: np.ndarray) -> np.ndarray:
        return queries.label_sent(batch, oracle.label)

    queries = RecordingQueries(label, x, lambda labels, images: labels != clean[images], norm=attack.norm,
                               max_queries_per_image=attack.max_queries_per_image, checkpoints=attack.checkpoints,
                               evasion=attack.evasion if transform else None, evasion_seed=seed + 1)
    attack.search(queries, None, np.random.default_rng(seed), lambda fraction: None)
    return queries.result(), queries


def running_best(images: np.ndarray, d: np.ndarray, n: int) -> np.ndarray:
    """Per query, the least distortion its image had reached once that query was answered."""
    out = np.full(len(images), np.inf)
    best = np.full(n, np.inf)
    for i, (img, v) in enumerate(zip(images.tolist(), d.tolist(), strict=True)):
        if v < best[img]:
            best[img] = v
        out[i] = best[img]
    return out


async def detected_run(name: str, attack: QueryAttack, oracle: InProcessOracle, x: np.ndarray, seed: int,
                       feeder: Feeder, config: BlacklightConfig, transform: bool = True) -> Run:
    result, q = attack_run(name, attack, oracle, x, seed, transform)
    images = np.concatenate(q.rows) if q.rows else np.zeros(0, np.int64)
    sent = np.concatenate(q.sent) if q.sent else np.zeros((0, *x.shape[1:]), np.float32)
    adv = np.concatenate(q.adv) if q.adv else np.zeros(0, bool)
    if len(images) != len(sent) or len(images) != int(result.queries.sum()):
        raise RuntimeError("the recorded queries disagree with the attack's count")
    d = np.where(adv, distances(x[images], sent, attack.norm), np.inf)
    fed = await feeder.feed([(CLIENT, batch) for batch in q.sent])
    return Run(name, result, images, running_best(images, d, len(x)), np.asarray(fed.matched, bool),
               fed.flagged_at(CLIENT, config.flag_matches, config.flag_window))


def after_bad(run: Run, bad: int) -> float:
    """Median over images of the distortion each had reached when its `bad`-th matched query was answered (an
    image with fewer matched queries: what it reached in the end, within fewer bad queries)."""
    out = []
    for img in range(len(run.result.queries)):
        mine = np.flatnonzero(run.image == img)
        hits = mine[run.matched[mine]]
        at = hits[bad - 1] if len(hits) >= bad else (mine[-1] if len(mine) else None)
        out.append(np.inf if at is None else run.distortion[at])
    return float(np.median(out))
