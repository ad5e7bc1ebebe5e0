"""Blacklight's shared store on a real redis-server (its Lua script), and the detector that feeds it: matches
across clients with both ids, exact re-sends, the flag rule, retention, the cap, bytes per stored query."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from bbrange.oracle.detection import blacklight
from bbrange.oracle.detection.blacklight_store import BlacklightStore, Observed
from bbrange.oracle.detection.config import BlacklightConfig, DetectionSettings, DetectorConfig
from bbrange.oracle.detection.detector import Detector
from bbrange.oracle.query_metrics import OracleMetrics

CONFIG = BlacklightConfig(flag_matches=5, flag_window=20)
# A minute into today (UTC): every test's calls fall in one bucket, whose keys expire in the future.
NOW = time.time() // 86_400 * 86_400 + 60


def near_copies(image: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """A decision-based attack's probes around one image: the image plus noise of a pixel level or so."""
    rng = np.random.default_rng(seed)
    return np.clip(image[None] + rng.uniform(-1 / 255, 1 / 255, (n, *image.shape)), 0, 1).astype(np.float32)


def run(redis_url: str, body: Callable[[Redis], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        redis = Redis.from_url(redis_url)
        try:
            return await body(redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


async def observe(store: BlacklightStore, client: str, x: np.ndarray, config: BlacklightConfig = CONFIG,
                  now: float = NOW) -> Observed:
    return await store.observe(client, "mnist", blacklight.input_ids(x), blacklight.fingerprints(x, config), config,
                               now=now)


def test_near_copies_from_one_client_match_and_raise_the_alarm_at_the_kth_match(redis_server, mnist_test):
    async def body(redis: Redis) -> tuple[Observed, Any]:
        store = BlacklightStore(redis, "bl-one")
        seen = await observe(store, "c_att", near_copies(mnist_test.x[0], 8))
        return seen, await store.client("c_att", "mnist")

    seen, client = run(redis_server.url, body)
    # The first probe has nothing to match; each later one matches an earlier one of the same request.
    assert seen.matched_client == [""] + ["c_att"] * 7
    assert seen.shared[0] < CONFIG.threshold <= min(seen.shared[1:])
    assert seen.stored == [1] * 8 and seen.queries_before == 0
    assert seen.alarm_at == 1 + CONFIG.flag_matches  # its 5th match: its 6th query
    assert (client.queries, client.matched, client.matched_other, client.first_match_at) == (8, 7, 0, 2)
    assert client.linked == []


def test_an_attack_split_over_keys_is_matched_with_both_client_ids(redis_server, mnist_test):
    async def body(redis: Redis) -> list[Any]:
        store = BlacklightStore(redis, "bl-split")
        probes = near_copies(mnist_test.x[1], 30)
        for i in range(0, 30, 3):  # round-robin over three keys, one probe each
            for k in range(3):
                await observe(store, f"c_key{k}", probes[i + k : i + k + 1])
        return [await store.client(f"c_key{k}", "mnist") for k in range(3)]

    clients = run(redis_server.url, body)
    for k, c in enumerate(clients):
        others = sorted({"c_key0", "c_key1", "c_key2"} - {f"c_key{k}"})
        assert c.linked == others, (k, c)
        assert c.matched_other >= 8 and c.queries == 10
    assert clients[0].first_match_at == 2  # key0's first probe came before any other


def test_another_process_matches_against_the_shared_log_and_rebuilds_when_redis_loses_it(redis_server, mnist_test):
    """Two stores on one Redis are two oracle processes: each reads what the other stored; a flushed log (a Redis
    restart) gives a new token, and a copy holding fingerprints Redis no longer has is rebuilt, not kept."""
    probes = near_copies(mnist_test.x[5], 3, seed=5)

    async def body(redis: Redis) -> list[Observed]:
        first, second = BlacklightStore(redis, "bl-procs"), BlacklightStore(redis, "bl-procs")
        await observe(first, "c_p1", probes[:1])
        across = await observe(second, "c_p2", probes[1:2])  # second's copy is built from the log
        await redis.delete(*[k async for k in redis.scan_iter(match="bl-procs:bl:*")])
        after = await observe(second, "c_p3", probes[2:])
        return [across, after]

    across, after = run(redis_server.url, body)
    assert across.matched_client == ["c_p1"]
    assert after.matched_client == [""] and after.stored == [1]


def test_an_attack_over_many_keys_is_flagged_as_a_group_as_fast_as_from_one_key(redis_server, mnist_test):
    """Twenty keys, one probe each in turn: no key has k matches of its own, but their group does after k matches
    between its clients; the call that fires it names every other member, and a later member is flagged as it joins."""
    probes = near_copies(mnist_test.x[6], 25, seed=6)

    async def body(redis: Redis) -> list[Observed]:
        store = BlacklightStore(redis, "bl-group")
        return [await observe(store, f"c_g{i}", probes[i : i + 1]) for i in range(25)]

    seen = run(redis_server.url, body)
    fired = [i for i, o in enumerate(seen) if o.group_flagged]
    # probe 0 matches nothing; probes 1..k match an earlier key's: the k-th match is probe k, the group's (k+1)-th query
    assert fired == [CONFIG.flag_matches]
    assert sorted(c for c, _ in seen[fired[0]].group_flagged) == sorted(f"c_g{i}" for i in range(CONFIG.flag_matches))
    assert all(q == 1 for _, q in seen[fired[0]].group_flagged)  # each had sent its one probe
    assert seen[fired[0]].alarm_at == 1 and all(o.alarm_at == 1 for o in seen[fired[0] + 1 :])  # later keys at once
    assert all(o.alarm_at is None for o in seen[: fired[0]])


def test_without_groups_only_a_keys_own_matches_flag_it(redis_server, mnist_test):
    probes = near_copies(mnist_test.x[6], 25, seed=6)
    alone = CONFIG.model_copy(update={"flag_groups": False})

    async def body(redis: Redis) -> list[Observed]:
        store = BlacklightStore(redis, "bl-nogroup")
        return [await observe(store, f"c_n{i}", probes[i : i + 1], alone) for i in range(25)]

    assert all(o.alarm_at is None and not o.group_flagged for o in run(redis_server.url, body))


def test_exact_resends_are_neither_matches_nor_stored_again(redis_server, mnist_test):
    async def body(redis: Redis) -> list[Observed]:
        store = BlacklightStore(redis, "bl-resend")
        x = np.asarray(mnist_test.x[10:14], np.float32)
        first = await observe(store, "c_a", np.concatenate([x, x[:1]]))  # an image twice in one request
        again = await observe(store, "c_a", x)  # the same request again (an Idempotency-Key retry answered anew)
        other = await observe(store, "c_b", x[2:])  # a popular image another client asks about
        return [first, again, other]

    first, again, other = run(redis_server.url, body)
    assert first.stored == [1, 1, 1, 1, 0] and first.matched_client == [""] * 5
    assert again.stored == [0] * 4 and again.matched_client == [""] * 4
    assert other.stored == [0, 0] and other.matched_client == ["", ""]


def test_fingerprints_are_forgotten_with_their_bucket(redis_server, mnist_test):
    probes = near_copies(mnist_test.x[2], 2)
    day = 86_400

    async def body(redis: Redis) -> list[Any]:
        store = BlacklightStore(redis, "bl-retention")
        await observe(store, "c_r", probes[:1], now=NOW)
        next_day = await observe(store, "c_r", probes[1:], now=NOW + day)  # one bucket of 24 h: gone
        store = BlacklightStore(redis, "bl-retention2")
        two = BlacklightConfig(buckets=2)  # buckets of 12 h: the previous one is still looked up
        await observe(store, "c_s", probes[:1], two, now=NOW)
        half_day = await observe(store, "c_s", probes[1:], two, now=NOW + day / 2)
        ttls = [await redis.ttl(k) async for k in redis.scan_iter(match="bl-retention:bl:*")]
        return [next_day, half_day, ttls]

    next_day, half_day, ttls = run(redis_server.url, body)
    assert next_day.matched_client == [""] and half_day.matched_client == ["c_s"]
    # Every key expires when its bucket is retention_s old: at most a day (and a half, for the next day's).
    assert ttls and all(0 < t <= 2 * day for t in ttls)


def test_past_the_cap_queries_are_matched_but_not_stored(redis_server, mnist_test):
    capped = BlacklightConfig(max_queries=5, flag_matches=3, flag_window=10)

    async def body(redis: Redis) -> list[Observed]:
        store = BlacklightStore(redis, "bl-cap")
        probes = near_copies(mnist_test.x[3], 8)
        return [await observe(store, "c_cap", probes, capped), await observe(store, "c_cap", probes[:1] * 0.5,
                                                                               capped)]

    full, after = run(redis_server.url, body)
    assert full.stored == [1] * 5 + [-1] * 3
    assert full.matched_client[5:] == ["c_cap"] * 3  # still looked up
    assert after.stored == [-1]


def test_bytes_per_stored_query_stay_under_2kb(redis_server, mnist_test):
    """MEMORY USAGE of every key of the store (fields, ids, owners, Redis's own overhead), per stored query."""
    config = BlacklightConfig(max_queries=4_000)

    async def body(redis: Redis) -> tuple[int, int]:
        store = BlacklightStore(redis, "bl-bytes")
        x = np.asarray(mnist_test.x[:2_000], np.float32)
        stored = 0
        for i in range(0, len(x), 250):
            stored += (await observe(store, f"c_{i % 7}", x[i : i + 250], config)).stored.count(1)
        used = 0
        async for k in redis.scan_iter(match="bl-bytes:bl:*", count=1000):
            used += await redis.memory_usage(k, samples=0) or 0
        return used, stored

    used, stored = run(redis_server.url, body)
    assert stored == 2_000
    assert used / stored <= 2048, used / stored


def test_the_detector_flags_with_the_linked_clients_and_a_clear_starts_afresh(redis_server, mnist_test):
    settings = DetectionSettings(default=DetectorConfig(policy="flag", blacklight=CONFIG))

    async def body(redis: Redis) -> list[Any]:
        oracle_metrics = OracleMetrics()
        detector = Detector(redis, "bl-detector", oracle_metrics, settings)
        probes = near_copies(mnist_test.x[4], 16, seed=4)
        labels = np.zeros(16, np.int64)
        await detector.update("c_first", "mnist", probes[:4], labels[:4])
        await detector.update("c_second", "mnist", probes[4:12], labels[4:12])
        flagged = (await detector.store.client("c_second")).flag
        headers = await detector.admit("c_second", "mnist")
        await detector.clear("c_second")
        # After the clear its own earlier probes no longer count against it; c_first's still do.
        await detector.update("c_second", "mnist", probes[12:], labels[12:])
        after = await detector.blacklight.client("c_second", "mnist")
        matches = oracle_metrics.registry.get_sample_value("bbrange_oracle_detection_blacklight_matches_total",
                                                           {"model": "mnist", "owner": "other_client"})
        return [flagged, headers, after, matches]

    flag, headers, after, matches = run(redis_server.url, body)
    assert flag is not None and flag.reason == "blacklight" and flag.model == "mnist"
    assert flag.queries == CONFIG.flag_matches and flag.linked == ("c_first",)
    assert flag.statistic is not None and flag.statistic >= CONFIG.threshold
    assert headers == {"X-Extraction-Flagged": f"blacklight; queries={CONFIG.flag_matches}"}
    assert after.queries == 4 and after.matched == 4 and after.linked == ["c_first"]
    assert matches >= 8


@pytest.mark.parametrize("bad", [{"window": 0}, {"threshold": 0}, {"buckets": 0}, {"flag_matches": 0}])
def test_settings_are_checked(bad):
    with pytest.raises(ValueError):
        BlacklightConfig(**bad)
