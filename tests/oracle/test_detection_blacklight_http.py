"""Blacklight in a real oracle process, over HTTP, on a real redis-server: a probe stream is flagged and blocked
(charged nothing), the same stream split over keys is flagged with the keys linked, natural traffic is not
flagged, and neither a full store nor a Redis restart makes the oracle answer 500 or answer unmetered."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from bbrange.shared.processes import free_port, wait_until
from bbrange.shared.stack import RedisServer
from tests.conftest import OracleProcess, start_oracle
from tests.oracle.test_budgets import metric_value, predict
from tests.oracle.test_detection_blacklight import near_copies
from tests.oracle.test_detection_http import detection

FLAG = "X-Extraction-Flagged"


@pytest.fixture(scope="module")
def oracle(quick_model_dir, redis_server, tmp_path_factory) -> Iterator[OracleProcess]:
    """Policy flag for every model, Blacklight's defaults (flagged at 10 matches within 100 of a key's queries)."""
    process = start_oracle(quick_model_dir, redis_server.url, "bbblacklight", tmp_path_factory.mktemp("logs"),
                           extra_env={"BBRANGE_DETECTION_DEFAULT": json.dumps({"policy": "flag"})})
    yield process
    process.stop()


def seen(oracle: OracleProcess, client_id: str) -> int:
    return int(detection(oracle, client_id)["models"][0]["blacklight"]["queries"])


def test_a_probe_stream_is_flagged_and_under_block_refused_and_charged_nothing(oracle, mnist_test):
    client_id, key = oracle.create_client(budget=10_000, name="prober")
    probes = near_copies(mnist_test.x[9000], 60, seed=1)
    flagged_at = None
    for i in range(0, len(probes), 4):
        r = predict(oracle.url, key, probes[i : i + 4])
        assert r.status_code == 200, r.text
        if FLAG in r.headers:
            flagged_at = i
            break
        wait_until(lambda n=i + 4: seen(oracle, client_id) >= n, 10, "the detector")
    assert flagged_at is not None and flagged_at <= 20, flagged_at
    assert r.headers[FLAG] == "blacklight; queries=11"  # its 10th match: its first probe had nothing to match
    s = detection(oracle, client_id)
    assert s["flag"]["reason"] == "blacklight" and s["flag"]["linked"] == []
    bl = s["models"][0]["blacklight"]
    assert bl["matched"] >= 10 and bl["first_match_at"] == 2 and bl["max_shared"] >= 25

    # Block: the next request is refused, nothing is charged, and the refusal does not name linked keys.
    with oracle.admin_client() as admin:
        admin.set_detection_policy(client_id, "block")
    used = oracle.usage(client_id)["used"]
    refused = predict(oracle.url, key, probes[:2])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "suspected_extraction", refused.text
    assert refused.json()["error"]["details"]["reason"] == "blacklight"
    assert oracle.usage(client_id)["used"] == used == flagged_at + 4
    assert metric_value(oracle.url, "bbrange_oracle_detection_flags_total", reason="blacklight", policy="flag") >= 1
    assert metric_value(oracle.url, "bbrange_oracle_detection_flagged", client=client_id, reason="blacklight") == 1
    assert metric_value(oracle.url, "bbrange_oracle_detection_blacklight_matches_total", owner="same_client") >= 10


def test_the_stream_split_over_keys_is_flagged_with_the_keys_linked(oracle, mnist_test):
    keys = [oracle.create_client(budget=1_000, name=f"split-{k}") for k in range(3)]
    ids = [client_id for client_id, _ in keys]
    probes = near_copies(mnist_test.x[9001], 45, seed=2)
    for i in range(0, len(probes), 3):  # round-robin: one probe per key per round
        for k, (_, key) in enumerate(keys):
            assert predict(oracle.url, key, probes[i + k : i + k + 1]).status_code == 200
    for k, client_id in enumerate(ids):
        wait_until(lambda c=client_id: seen(oracle, c) == 15, 10, "the detector")
        s = detection(oracle, client_id)
        others = sorted(set(ids) - {client_id})
        assert s["flagged"] and s["flag"]["reason"] == "blacklight", (k, s)
        assert set(s["flag"]["linked"]) <= set(others) and s["flag"]["linked"], s["flag"]
        bl = s["models"][0]["blacklight"]
        assert bl["linked_clients"] == others and bl["matched_other_clients"] >= 10
    assert metric_value(oracle.url, "bbrange_oracle_detection_blacklight_matches_total", owner="other_client") >= 30


def test_natural_test_images_from_several_keys_are_not_flagged(oracle, mnist_test):
    clients = [oracle.create_client(budget=1_000, name=f"user-{k}") for k in range(3)]
    for k, (_, key) in enumerate(clients):
        for i in range(300 * k, 300 * (k + 1), 50):
            r = predict(oracle.url, key, mnist_test.x[i : i + 50])
            assert r.status_code == 200 and FLAG not in r.headers
    for client_id, _ in clients:
        wait_until(lambda c=client_id: seen(oracle, c) == 300, 10, "the detector")
        s = detection(oracle, client_id)
        assert not s["flagged"], s
        assert s["models"][0]["blacklight"]["matched"] < 10


def test_a_full_store_or_a_redis_restart_never_fails_or_frees_a_request(quick_model_dir, tmp_path, mnist_test):
    """The store's cap reached: answered and charged, the fingerprints dropped (counted). Redis restarting: 503
    while it is down (nothing answered, nothing charged), then answered and charged again; never a 500."""
    redis = RedisServer(free_port(), directory=tmp_path / "redis", append_only=True)
    redis.start()
    cap = {"blacklight": {"max_queries": 20}}
    oracle = start_oracle(quick_model_dir, redis.url, "bbblfull", tmp_path,
                          extra_env={"BBRANGE_REDIS_TIMEOUT_S": "1", "BBRANGE_DETECTION_DEFAULT": json.dumps(cap)})
    try:
        client_id, key = oracle.create_client(budget=1_000)
        for i in range(0, 100, 10):
            assert predict(oracle.url, key, mnist_test.x[i : i + 10]).status_code == 200
        wait_until(lambda: seen(oracle, client_id) == 100, 10, "the detector")
        dropped = metric_value(oracle.url, "bbrange_oracle_detection_blacklight_fingerprints_total",
                               outcome="dropped")
        assert dropped == 80 and oracle.usage(client_id)["used"] == 100

        redis.stop()
        down = [predict(oracle.url, key, mnist_test.x[200:205]) for _ in range(3)]
        assert [r.status_code for r in down] == [503] * 3
        redis.start()  # the same port and AOF: budgets and keys are back, the Lua script cache is not
        wait_until(lambda: httpx.get(f"{oracle.url}/readyz", timeout=5).status_code == 200, 30, "ready again")
        probes = near_copies(mnist_test.x[9002], 12, seed=3)
        for i in range(0, 12, 4):
            assert predict(oracle.url, key, probes[i : i + 4]).status_code == 200
        wait_until(lambda: seen(oracle, client_id) == 112, 10, "the detector after the restart")
        assert oracle.usage(client_id)["used"] == 112
        assert metric_value(oracle.url, "bbrange_oracle_refusals_total", reason="internal_error") == 0
    finally:
        oracle.stop()
        redis.stop()


def test_a_retried_request_is_not_evidence(oracle, mnist_test):
    """The same batch: sent with an Idempotency-Key, retried with it (answered from the replay store, never shown to
    the detector), then sent again without one (answered anew: exact re-sends, neither stored nor matched)."""
    client_id, key = oracle.create_client(budget=1_000, name="retrier")
    x = mnist_test.x[9100:9120]
    for headers in ({"Idempotency-Key": "batch-1"}, {"Idempotency-Key": "batch-1"}, {}):
        assert predict(oracle.url, key, x, **headers).status_code == 200
    wait_until(lambda: seen(oracle, client_id) == 40, 10, "the detector")
    bl = detection(oracle, client_id)["models"][0]["blacklight"]
    assert bl["matched"] == 0 and oracle.usage(client_id)["used"] == 40
