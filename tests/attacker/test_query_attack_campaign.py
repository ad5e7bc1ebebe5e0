"""A query attack (the tests' toy, through BBRANGE_ATTACK_PLUGINS) as a campaign through the real API and a real
worker: no substitute, its questions counted under "attack" and charged exactly so by the oracle, its results'
distortion curve and success by size, its samples' distortion and queries, and the spec's refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.attacker.conftest import AttackerStack, oracle_answered, small_spec, start_stack, submit, wait_final
from tests.conftest import OracleProcess, RedisServer

ROOT = Path(__file__).resolve().parents[2]
DB = 12
N = 30


@pytest.fixture(scope="module")
def query_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory,
                oracle_pair: tuple[OracleProcess, OracleProcess]) -> Iterator[AttackerStack]:
    stack = start_stack(redis_server, DB, tmp_path_factory.mktemp("query-attacker"), workers=1, oracles=oracle_pair,
                        extra_env={"BBRANGE_ATTACK_PLUGINS": "tests.attacker.toy_query_attack", "PYTHONPATH": str(ROOT)})
    yield stack
    stack.stop()


def toy_spec(oracle: OracleProcess, api_key: str, **crafting: Any) -> dict[str, Any]:
    budget = crafting.pop("query_budget", None)
    spec = small_spec(oracle.url, api_key, crafting={"method": "toy-query", "max_queries_per_image": 20,
                                                     "checkpoints": [5, 10, 20], **crafting}, evaluation={"size": N})
    if budget is not None:
        spec["query_budget"] = budget
    return spec


def test_a_query_attack_campaign_counts_every_question(query_stack: AttackerStack, oracle: OracleProcess,
                                                       oracle_key: tuple[str, str]) -> None:
    client_id, api_key = oracle_key
    with query_stack.client() as api:
        cid = submit(api, toy_spec(oracle, api_key))
        record = wait_final(api, cid, timeout=180)
        assert record["state"] == "succeeded", record
        q = record["queries"]
        # noise: at the found sizes, then 3 L2 and 3 L∞ fixed sizes
        assert (q["labelling"], q["agreement"], q["evaluation"], q["baseline"]) == (0, N, 0, 7 * N)
        assert 0 < q["attack"] <= 20 * N and not record["epochs"]
        assert q["total"] == oracle_answered(oracle, client_id) == oracle.usage(client_id)["used"]
        results = record["results"]
        curve = results["distortion_by_queries"]
        assert curve["norm"] == "l2" and curve["queries"] == [5, 10, 20] and len(curve["median"]) == 3
        points = results["success_by_size"]["points"]
        assert [p["size"] for p in points] == [1.5, 2.0, 3.0] and all(p["noise_rate"] is not None for p in points)
        assert results["distortion_by_queries_other"]["norm"] == "linf"
        assert [p["size"] for p in results["success_by_size_other"]["points"]] == [0.1, 0.2, 0.3]
        assert results["samples"] == N and results["queries_per_image"]["total"] == q["attack"]
        assert "not labelled again" in results["evaluation_note"]
        page = api.get(f"/attacks/{cid}/samples", params={"limit": N}).raise_for_status().json()
        items = page["items"]
        assert sum(s["queries"] for s in items) == q["attack"]
        assert all(s["l2"] >= 0 and s["linf"] >= 0 and s["queries"] <= 20 for s in items)
        assert all((s["oracle_label_after"] is None) == s["success"] for s in items)
        assert api.get(f"/attacks/{cid}/report").status_code == 200


@pytest.mark.parametrize("oracle_key", [N + 100], indirect=True)
def test_the_oracle_budget_running_out_mid_search_keeps_what_was_found(query_stack: AttackerStack,
                                                                        oracle: OracleProcess,
                                                                        oracle_key: tuple[str, str]) -> None:
    client_id, api_key = oracle_key
    with query_stack.client() as api:
        cid = submit(api, toy_spec(oracle, api_key))
        record = wait_final(api, cid, timeout=180)
        assert record["state"] == "failed" and record["error"]["code"] == "budget_exhausted", record
        assert "best adversarial so far" in record["error"]["message"]
        q = record["queries"]
        assert q["agreement"] == N and q["baseline"] == 0 and q["attack"] <= 100
        assert q["total"] == oracle_answered(oracle, client_id) == oracle.usage(client_id)["used"]
        assert record["samples_available"]
        assert api.get(f"/attacks/{cid}/samples").raise_for_status().json()["total"] == N


@pytest.mark.parametrize(("change", "reason"), [
    ({"checkpoints": [10, 5]}, "strictly increasing"),
    ({"norm": "linf"}, "supports the norm"),
    ({"targeted": True}, "needs `target`"),
    ({"targeted": True, "target": "least_likely"}, "trains no substitute"),
    ({"query_budget": 20 * N}, "budget_too_small"),
])
def test_a_query_attack_spec_is_refused_with_its_reason(query_stack: AttackerStack, oracle: OracleProcess,
                                                        oracle_key: tuple[str, str], change: dict[str, Any],
                                                        reason: str) -> None:
    with query_stack.client() as api:
        r = api.post("/attacks", json=toy_spec(oracle, oracle_key[1], **change))
    assert r.status_code == 422 and reason in r.text, r.text


def test_a_real_query_attack_campaign_is_charged_what_it_counted(query_stack: AttackerStack, oracle: OracleProcess,
                                                                 oracle_key: tuple[str, str]) -> None:
    """RayS, a registered attack (not the toy), against our own oracle: the campaign's total is what the oracle
    charged the key and what it says it answered."""
    client_id, api_key = oracle_key
    spec = small_spec(oracle.url, api_key, crafting={"method": "rays", "max_queries_per_image": 50,
                                                     "checkpoints": [10, 50]}, evaluation={"size": 10})
    with query_stack.client() as api:
        record = wait_final(api, submit(api, spec), timeout=180)
    assert record["state"] == "succeeded", record
    q = record["queries"]
    assert q["total"] == q["agreement"] + q["attack"] + q["baseline"] and 0 < q["attack"] <= 50 * 10
    assert q["total"] == oracle_answered(oracle, client_id) == oracle.usage(client_id)["used"]
    assert record["results"]["distortion_by_queries_other"]["norm"] == "l2"
