"""Streams for benchmarks/detection_blacklight.py, and Blacklight fed as the oracle's detector feeds it.

`Feeder` runs the oracle's own Blacklight logic (`blacklight.fingerprints`, `BlacklightStore.observe`: the Lua
script, on a real redis-server) for requests of a client, in order. The streams: benign clients of MNIST test
images (distinct, re-sent, lightly augmented, popular images shared by many clients), and decision-based attacks
recorded from the engine (`decision_stream`: any of its query attacks; `hopskipjump_stream`) against an oracle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from redis.asyncio import Redis

from bbrange.attacker.engine import InProcessOracle
from bbrange.attacker.engine.query_attacks.base import QueryAttack
from bbrange.attacker.engine.query_attacks.budget import PerImageQueries
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
from bbrange.oracle.detection import blacklight
from bbrange.oracle.detection.blacklight_store import BlacklightStore
from bbrange.oracle.detection.config import BlacklightConfig

Request = tuple[str, np.ndarray]  # (client, inputs)


@dataclass
class Fed:
    """Per query in the order fed: its client, the most hashes it shared with an earlier query, whether that made
    a match, and whether it was stored; per client the query at which the flag rule fired."""

    clients: list[str] = field(default_factory=list)
    shared: list[int] = field(default_factory=list)
    matched: list[bool] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)
    alarms: dict[str, tuple[int, int]] = field(default_factory=dict)  # client: (its query, the stream's query)
    fingerprint_s: float = 0.0
    store_s: float = 0.0

    def match_rate(self, only: np.ndarray | None = None) -> float:
        m = np.asarray(self.matched, bool)
        return float(m[only].mean() if only is not None else m.mean()) if len(m) else 0.0

    def first_match(self) -> int | None:
        hits = np.flatnonzero(self.matched)
        return int(hits[0]) + 1 if len(hits) else None

    def flagged_share(self, k: int, w: int) -> float:
        """The share of clients a rule "k matches within w of the client's consecutive queries" would flag."""
        return float(np.mean([self.flagged_at(c, k, w) is not None for c in dict.fromkeys(self.clients)]))

    def flagged_at(self, client: str, k: int, w: int) -> int | None:
        """The client's own query number at which the rule would fire first."""
        mine = np.asarray([m for c, m in zip(self.clients, self.matched, strict=True) if c == client], bool)
        pos = np.flatnonzero(mine) + 1
        hit = np.flatnonzero(pos[k - 1 :] - pos[: len(pos) - k + 1] < w) if len(pos) >= k else np.zeros(0, np.int64)
        return int(pos[hit[0] + k - 1]) if len(hit) else None


class Feeder:
    """The oracle's Blacklight for one model on a private key prefix of a real Redis."""

    def __init__(self, redis: Redis, prefix: str, config: BlacklightConfig, model: str = "mnist") -> None:
        self.store = BlacklightStore(redis, prefix)
        self.config, self.model = config, model

    def index_bytes(self) -> int:
        return sum(self.store.index_bytes().values())

    async def feed(self, requests: list[Request], fed: Fed | None = None) -> Fed:
        fed = fed or Fed()
        for client, x in requests:
            started = time.perf_counter()
            fps, ids = blacklight.fingerprints(x, self.config), blacklight.input_ids(x)
            mid = time.perf_counter()
            seen = await self.store.observe(client, self.model, ids, fps, self.config)
            fed.fingerprint_s += mid - started
            fed.store_s += time.perf_counter() - mid
            fed.clients += [client] * len(x)
            fed.shared += seen.shared
            fed.matched += [bool(c) for c in seen.matched_client]
            fed.stored += seen.stored
            if seen.alarm_at is not None:
                at = len(fed.clients) - len(x) + seen.alarm_at - seen.queries_before
                fed.alarms.setdefault(client, (seen.alarm_at, at))
                for member, queries in seen.group_flagged:  # its group's rule fired: the group's keys with it
                    fed.alarms.setdefault(member, (queries, at))
        return fed


def requests_of(x: np.ndarray, client: str, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """A client's inputs as requests of 1 to 100 inputs, as people and scripts send them."""
    out, i = [], 0
    while i < len(x):
        n = int(rng.choice([1, 5, 20, 50, 100]))
        out.append((client, x[i : i + n]))
        i += n
    return out


def interleave(per_client: list[list[tuple[str, np.ndarray]]], rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Clients' requests in a random interleaving that keeps each client's order."""
    queues = [list(reversed(r)) for r in per_client if r]
    out = []
    while queues:
        k = int(rng.integers(len(queues)))
        out.append(queues[k].pop())
        if not queues[k]:
            queues.pop(k)
    return out


def shift(img: np.ndarray, rng: np.random.Generator, most: int = 2) -> np.ndarray:
    """Shifted by up to `most` pixels each way, the border filled with black (a small crop and re-centre)."""
    dy, dx = (int(v) for v in rng.integers(-most, most + 1, size=2))
    out = np.zeros_like(img)
    h, w = img.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
        img[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return out


def benign_distinct(n: int, clients: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Every image of n once, shared out among `clients`, their requests interleaved: (client, image indices)."""
    order = rng.permutation(n)
    return interleave([requests_of(part, f"user{c}", rng) for c, part in enumerate(np.array_split(order, clients))],
                      rng)


def benign_real_use(x: np.ndarray, clients: int, per_client: int, rng: np.random.Generator,
                    ) -> dict[str, list[Request]]:
    """Traffic that looks like real use, one scenario each (fed to a fresh store)."""
    scenarios: dict[str, list[Request]] = {}
    # The same image asked again later (no Idempotency-Key): each client re-sends a quarter of its images.
    streams = []
    for c in range(clients):
        mine = x[rng.choice(len(x), per_client, replace=False)]
        again = mine[rng.choice(per_client, per_client // 4, replace=False)]
        streams.append(requests_of(np.concatenate([mine, again]), f"user{c}", rng))
    scenarios["image sent again later"] = interleave(streams, rng)
    # Lightly augmented copies: each image, then a copy shifted (1-2 px) or brightened (×0.8..1.2) or both.
    for name, edit in (("shifted copies (1-2 px)", lambda im: shift(im, rng)),
                       ("brightness ×0.8-1.2", lambda im: np.clip(im * rng.uniform(0.8, 1.2), 0, 1)),
                       ("shift + brightness", lambda im: np.clip(shift(im, rng) * rng.uniform(0.8, 1.2), 0, 1))):
        streams = []
        for c in range(clients):
            mine = x[rng.choice(len(x), per_client // 2, replace=False)]
            copies = np.stack([edit(im) for im in mine]).astype(np.float32)
            streams.append(requests_of(np.concatenate([mine, copies]), f"user{c}", rng))
        scenarios[name] = interleave(streams, rng)
    # Popular images: every client asks about images drawn from the same few hundred.
    popular = x[rng.choice(len(x), 300, replace=False)]
    scenarios["popular images, many clients"] = interleave(
        [requests_of(popular[rng.choice(len(popular), per_client)], f"user{c}", rng) for c in range(clients)], rng)
    return scenarios


Call = tuple[np.ndarray, np.ndarray]  # one oracle call: (inputs, the oracle's labels)


def decision_stream(oracle: InProcessOracle, attack: QueryAttack, x: np.ndarray, seed: int) -> list[Call]:
    """The engine's decision-based `attack` (untargeted, as configured) on `x`, every image advanced together: each
    oracle call's inputs and the oracle's labels, in order (the label function is wrapped; the attack does not know
    it is watched). The clean images' own labels, which the attack starts from, are not among the calls."""
    clean = oracle.label(x)
    calls: list[Call] = []

    def label(batch: np.ndarray) -> np.ndarray:
        labels = oracle.label(batch)
        calls.append((np.asarray(batch, np.float32).copy(), np.asarray(labels).copy()))
        return labels

    queries = PerImageQueries(label, x, lambda labels, images: labels != clean[images], norm=attack.norm,
                              max_queries_per_image=attack.max_queries_per_image, checkpoints=attack.checkpoints,
                              evasion=attack.evasion, evasion_seed=seed + 1)
    attack.search(queries, None, np.random.default_rng(seed), lambda fraction: None)
    return calls


def hopskipjump_stream(oracle: InProcessOracle, x: np.ndarray, budget: int, seed: int) -> list[np.ndarray]:
    """The engine's HopSkipJump (untargeted L2, its defaults) on `x` (`decision_stream`): each call's inputs."""
    attack = HopSkipJump(norm="l2", max_queries_per_image=budget, checkpoints=(budget,), batch_size=len(x))
    return [inputs for inputs, _ in decision_stream(oracle, attack, x, seed)]


def over_keys(calls: list[np.ndarray], keys: int) -> list[Request]:
    """An attack's calls as requests of `keys` API keys: each call's rows dealt round-robin over the keys (each
    key's share of a call is one request), so consecutive queries come from different keys."""
    out: list[Request] = []
    turn = 0
    for batch in calls:
        owners = (turn + np.arange(len(batch))) % keys
        turn += len(batch)
        for k in dict.fromkeys(owners.tolist()):
            out.append((f"key{k}", batch[owners == k]))
    return out


def groups_of(keys: list[str], linked: dict[str, list[str]]) -> int:
    """The connected groups Blacklight's links make of the keys."""
    parent = {k: k for k in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for k, others in linked.items():
        for o in others:
            if o in parent:
                parent[root(k)] = root(o)
    return len({root(k) for k in keys})


async def blacklight_feed(r: Redis, prefix: str, model: str, requests: list[Request], config: BlacklightConfig,
                          ) -> tuple[dict[str, int], dict[str, list[str]], float, int]:
    """Blacklight on a fresh store: per client the stream's query at which it was flagged, its linked clients; the
    share of queries matched, the queries fed."""
    feeder = Feeder(r, prefix, config, model=model)
    fed = await feeder.feed(requests)
    clients = list(dict.fromkeys(fed.clients))
    linked = {c: (await feeder.store.client(c, model)).linked for c in clients}
    return {c: at for c, (_, at) in fed.alarms.items()}, linked, fed.match_rate(), len(fed.matched)
