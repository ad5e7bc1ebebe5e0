"""Blacklight in the oracle, measured: false positives on benign MNIST traffic, queries until a decision-based
attack is matched and flagged (one key, and spread over 100 keys), and its cost in CPU, Redis time and memory.

    .venv/bin/python benchmarks/detection_blacklight.py     # ~2 min on 2 cores

The oracle's own Blacklight logic runs in-process (`blacklight.fingerprints`, `BlacklightStore.observe`: the Lua
script) against a private redis-server, client by client and request by request as the oracle's detector feeds
it; every scenario starts from an empty store. Settings: `BlacklightConfig()` defaults (printed first).

1. Benign, distinct: every MNIST test image once (10,000), shared out among 100 clients, requests of 1-100
   inputs interleaved. The false positive rate is the share of queries matched, and of clients flagged.
2. Benign, real use (a fresh store each): the same image sent again later without an Idempotency-Key; each image
   then a lightly augmented copy (shifted 1-2 px, brightness ×0.8-1.2, both); 100 clients asking about the same
   300 popular images.
3. Attack: the engine's HopSkipJump (untargeted L2, its defaults; images from test index 5000 that the `mnist`
   oracle labels correctly, all advanced together) against the `mnist` oracle, its oracle calls recorded and fed
   in order, from one key, and round-robin over 100 keys (each call's rows dealt over the keys).
4. Cost: fingerprinting µs per query, the store's round trip, Redis's own time (INFO commandstats),
   and bytes per stored query (MEMORY USAGE of every key of the store; the process's index beside it) after part 1
   and after filling one model's store to its cap with random fingerprints (every hash distinct: the worst case).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from blacklight_streams import (  # noqa: E402
    Fed,
    Feeder,
    benign_distinct,
    benign_real_use,
    hopskipjump_stream,
    over_keys,
)
from oracles import correctly_labelled, frozen, load_oracle_model  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from bbrange.attacker.engine import InProcessOracle  # noqa: E402
from bbrange.oracle.detection.blacklight_store import BlacklightStore  # noqa: E402
from bbrange.oracle.detection.config import BlacklightConfig  # noqa: E402
from bbrange.shared.datasets import load_dataset  # noqa: E402
from bbrange.shared.stack import RedisServer  # noqa: E402

RULES = ((1, 1), (5, 100), (10, 100), (20, 100))  # (k, W): flagged at k matches within W of its queries


def rule(config: BlacklightConfig) -> str:
    return f"k={config.flag_matches} matches within W={config.flag_window} of a client's queries"


async def redis_usec(r: Redis) -> float:
    stats = await r.info("commandstats")
    return float(sum(v.get("usec", 0.0) for k, v in stats.items() if k.startswith("cmdstat_")))


async def store_bytes(r: Redis, match: str) -> int:
    keys = [k async for k in r.scan_iter(match=match, count=1000)]
    total = 0
    for i in range(0, len(keys), 1000):
        async with r.pipeline(transaction=False) as pipe:
            for k in keys[i : i + 1000]:
                pipe.memory_usage(k, samples=0)
            total += sum(v or 0 for v in await pipe.execute())
    return total


def report(name: str, fed: Fed, config: BlacklightConfig) -> None:
    clients = list(dict.fromkeys(fed.clients))
    resent = fed.stored.count(0)
    print(f"  {name:<30} {len(fed.matched):>6,} queries ({resent:,} exact re-sends), {len(clients)} clients: "
          f"matched {fed.match_rate():.2%} of queries; clients flagged {len(fed.alarms) / len(clients):.0%} ("
          + ", ".join(f"k={k}, W={w}: {fed.flagged_share(k, w):.0%}" for k, w in RULES) + ")")


async def benign(r: Redis, test_x: np.ndarray, test_y: np.ndarray, config: BlacklightConfig, clients: int,
                 seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"\n1. Benign, distinct: {len(test_x):,} MNIST test images, each once, {clients} clients, salt seed "
          f"{config.salt_seed}")
    await r.config_resetstat()
    feeder = Feeder(r, f"bench:distinct{config.salt_seed}", config)
    requests = benign_distinct(len(test_x), clients, rng)
    fed = await feeder.feed([(client, test_x[idx]) for client, idx in requests])
    usec = await redis_usec(r)
    report("distinct test images", fed, config)
    labels = np.concatenate([test_y[idx] for _, idx in requests])
    print("  matched by class: " + ", ".join(f"{c}: {fed.match_rate(labels == c):.1%}" for c in range(10)))
    shared = np.asarray(fed.shared)
    print("  match rate by threshold T (the most hashes a query shares with one earlier query ≥ T): "
          + ", ".join(f"T={t}: {(shared >= t).mean():.2%}" for t in (20, 25, 26, 30, 35)))
    n = len(fed.matched)
    used = await store_bytes(r, f"bench:distinct{config.salt_seed}:bl:{feeder.model}:*")
    print(f"  cost: fingerprints {1e6 * fed.fingerprint_s / n:.0f} µs/query, store round trip "
          f"{1e6 * fed.store_s / n:.0f} µs/query (Redis's own time {usec / n:.0f} µs/query); "
          f"{used / max(fed.stored.count(1), 1):,.0f} bytes of Redis per stored query ({fed.stored.count(1):,} "
          f"stored), {feeder.index_bytes() / max(fed.stored.count(1), 1):,.0f} bytes of the process's index")


async def real_use(r: Redis, test_x: np.ndarray, config: BlacklightConfig, clients: int, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    print(f"\n2. Benign, real use ({clients} clients, 100 images each; a fresh store per scenario)")
    for i, (name, requests) in enumerate(benign_real_use(test_x, clients, 100, rng).items()):
        report(name, await Feeder(r, f"bench:real{i}", config).feed(requests), config)


async def attack(r: Redis, test_x: np.ndarray, config: BlacklightConfig, images: int, budget: int,
                 seed: int) -> None:
    model, card = load_oracle_model("mnist", torch.device("cpu"))
    oracle = InProcessOracle(frozen(model), tuple(card["input_shape"]), card["num_classes"])
    test_y = load_dataset("mnist", "test", download=False).y
    x, _ = correctly_labelled(oracle, test_x, test_y, 5000, images, candidates=4)
    calls = hopskipjump_stream(oracle, x, budget, seed)
    total = sum(len(c) for c in calls)
    print(f"\n3. Attack: HopSkipJump, {len(x)} images × {budget:,} queries ({total:,} queries in {len(calls)} calls)")
    for keys in (1, 100):
        fed = await Feeder(r, f"bench:attack{keys}", config).feed(over_keys(calls, keys))
        firsts = sorted(at for _, at in fed.alarms.values())
        print(f"  {keys:>3} key{'s' if keys > 1 else ' '}: first match at query {fed.first_match()}, "
              f"{fed.match_rate():.1%} of its queries matched; first key flagged at query "
              f"{firsts[0] if firsts else '-'}, {len(firsts)} of {keys} keys flagged"
              + (f" (the last at query {firsts[-1]:,})" if keys > 1 and firsts else ""))


async def fill(r: Redis, config: BlacklightConfig, queries: int, seed: int) -> None:
    """Store `queries` random fingerprints (every hash distinct) and measure bytes per stored query on the way."""
    rng = np.random.default_rng(seed + 2)
    store = BlacklightStore(r, "bench:fill")
    stored, checkpoints = 0, sorted({min(queries, c) for c in (10_000, queries // 2, queries)})
    print(f"\n4. Memory: one model's store filled with {queries:,} random fingerprints (cap {config.max_queries:,})")
    for target in checkpoints:
        while stored < target:
            n = min(1000, target - stored)
            fps = rng.integers(1, 2**63, size=(n, config.hashes), dtype=np.int64).astype(np.uint64)
            ids = rng.integers(1, 2**63, size=n, dtype=np.int64).astype(np.uint64)
            seen = await store.observe(f"filler{stored % 97}", "mnist", ids, fps, config)
            stored += seen.stored.count(1)
            if seen.stored.count(1) < n:
                break
        used = await store_bytes(r, "bench:fill:bl:*")
        index = sum(store.index_bytes().values())
        print(f"  {stored:>8,} stored: Redis {used / 2**20:,.1f} MiB, {used / stored:,.0f} bytes per stored query; "
              f"the process's index {index / 2**20:,.1f} MiB, {index / stored:,.0f} bytes per stored query")


def main(images: int = typer.Option(10_000, help="Distinct MNIST test images for the benign run"),
         clients: int = typer.Option(100, help="Benign clients"),
         attack_images: int = typer.Option(10, help="Images HopSkipJump attacks"),
         budget: int = typer.Option(1_000, help="HopSkipJump's queries per image"),
         fill_queries: int = typer.Option(100_000, help="Random fingerprints stored for the memory figure (0: skip)"),
         salt_seeds: list[int] = typer.Option([], help="Part 1 again with these salt seeds (the seed decides which "
                                              "windows are the largest S, and so which images collide)"),
         seed: int = 0) -> None:
    torch.set_num_threads(1)
    config = BlacklightConfig()
    print(f"Blacklight settings: {config.model_dump_json()}; flag rule: {rule(config)}")
    test = load_dataset("mnist", "test", download=False)
    test_x, test_y = np.asarray(test.x[:images], np.float32), np.asarray(test.y[:images])

    async def run() -> None:
        with RedisServer() as server:
            r = Redis.from_url(server.url)
            try:
                print(f"redis-server {(await r.info('server'))['redis_version']} on a private port")
                await benign(r, test_x, test_y, config, clients, seed)
                for salt in salt_seeds:
                    await benign(r, test_x, test_y, config.model_copy(update={"salt_seed": salt}), clients, seed)
                await real_use(r, np.asarray(test.x, np.float32), config, clients, seed)
                await attack(r, np.asarray(test.x, np.float32), config, attack_images, budget, seed)
                if fill_queries:
                    await fill(r, config, fill_queries, seed)
            finally:
                await r.aclose()

    asyncio.run(run())


if __name__ == "__main__":
    typer.run(main)
