"""A JBDA campaign against an oracle that blocks suspected extraction: stopped, with the reason and the count."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.attacker.conftest import AttackerStack, oracle_answered, small_spec, start_stack, submit, wait_final
from tests.conftest import OracleProcess, RedisServer, start_oracle


@pytest.fixture(scope="module")
def blocking_oracle(quick_model_dir, redis_server, tmp_path_factory) -> Iterator[OracleProcess]:
    oracle = start_oracle(quick_model_dir, redis_server.url, "bbblock", tmp_path_factory.mktemp("logs"),
                          extra_env={"BBRANGE_DETECTION_MODELS": json.dumps({"mnist": {"policy": "block"}})})
    yield oracle
    oracle.stop()


@pytest.fixture(scope="module")
def blocked_attacker(redis_server: RedisServer, blocking_oracle: OracleProcess,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackerStack]:
    """An attacker whose allowlist holds the blocking oracle's exact origin (allowlists name ports)."""
    stack = start_stack(redis_server, 5, tmp_path_factory.mktemp("blocked-attacker"), workers=1,
                        oracles=(blocking_oracle,))
    yield stack
    stack.stop()


def test_a_jbda_campaign_is_blocked_with_a_clear_reason(blocked_attacker: AttackerStack,
                                                        blocking_oracle: OracleProcess):
    attacker = blocked_attacker
    oracle = blocking_oracle
    client_id, key = oracle.create_client(budget=100_000, name="blocked-campaign")
    spec = small_spec(oracle.url, key, initial_set={"kind": "dataset", "split": "test", "offset": 0, "size": 100},
                      substitute={"rho": 4, "training": {"epochs": 1}}, evaluation={"size": 50})
    with attacker.client() as api:
        record = wait_final(api, submit(api, spec), timeout=300)
    assert record["state"] == "failed", record
    error = record["error"]
    assert error["code"] == "suspected_extraction", error
    assert "blocked" in error["message"] and "queries answered" in error["message"]
    q = record["queries"]
    assert q["labelling"] < 100 * 2**3  # stopped before ρ=3 was labelled
    assert record["results"]["flagged"].startswith("prada; queries=")
    assert record["results"]["flagged_after_queries"] == q["total"]
    # The refused request was charged nothing: the oracle answered (and charged) exactly what the campaign counted.
    assert oracle_answered(oracle, client_id) == q["total"] == oracle.usage(client_id)["used"]


def test_a_flagged_query_attack_reports_what_its_bad_queries_bought(blocked_attacker: AttackerStack,
                                                                     blocking_oracle: OracleProcess):
    """HopSkipJump from a key whose own policy is `flag`: Blacklight flags it within its first hundred or so
    queries; the campaign finishes and its results carry the flag and the bad-query figure."""
    oracle = blocking_oracle
    client_id, key = oracle.create_client(budget=100_000, name="flagged-query-attack")
    oracle.admin_client().set_detection_policy(client_id, "flag")
    spec = small_spec(oracle.url, key, crafting={"method": "hopskipjump", "max_queries_per_image": 300,
                                                 "checkpoints": [100, 200, 300]}, evaluation={"size": 4})
    with blocked_attacker.client() as api:
        record = wait_final(api, submit(api, spec), timeout=300)
    assert record["state"] == "succeeded", record
    results, q = record["results"], record["queries"]
    assert results["flagged"].startswith("blacklight; queries=")
    figure = results["distortion_after_bad_queries"]
    assert figure["norm"] == "l2" and 0 <= figure["attack_queries_at_flag"] < q["attack"]
    assert figure["images_with_bad_queries"] >= 1
    assert [p["bad_queries"] for p in figure["points"]] == [100, 500, 1_000]
    # More bad queries never bought a larger median distortion
    medians = [p["median"] for p in figure["points"]]
    assert medians == sorted(medians, reverse=True)
