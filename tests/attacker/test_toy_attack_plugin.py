"""Adding an attack takes an engine class, a spec model and a registry entry, nothing else: a toy attack that
lives in the tests only (toy_attack.py, toy_attack_engine.py), named in BBRANGE_ATTACK_PLUGINS, runs a
campaign through the real API and a real worker, and its results carry its own measures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attacker.conftest import AttackerStack, small_spec, start_stack, submit, wait_final
from tests.conftest import OracleProcess, RedisServer

ROOT = Path(__file__).resolve().parents[2]
DB = 10  # the other test modules' stacks use DBs 1-7, 13 and 14


@pytest.fixture(scope="module")
def plugin_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory,
                 oracle_pair: tuple[OracleProcess, OracleProcess]) -> Iterator[AttackerStack]:
    stack = start_stack(redis_server, DB, tmp_path_factory.mktemp("plugin-attacker"), workers=1, oracles=oracle_pair,
                        extra_env={"BBRANGE_ATTACK_PLUGINS": "tests.attacker.toy_attack", "PYTHONPATH": str(ROOT)})
    yield stack
    stack.stop()


def test_a_toy_attack_from_outside_the_service_runs_a_campaign(plugin_stack: AttackerStack, oracle: OracleProcess,
                                                                oracle_key: tuple[str, str]) -> None:
    _, api_key = oracle_key
    with plugin_stack.client() as api:
        schema = api.get("/openapi.json").raise_for_status().json()["components"]["schemas"]
        assert {"ToyCrafting", "FgsmCrafting", "JsmaCrafting"} <= set(schema)
        refused = api.post("/attacks", json=small_spec(oracle.url, api_key, crafting={"method": "toy-brighten",
                                                                                      "delta": 2}))
        assert refused.status_code == 422 and "crafting.toy-brighten.delta" in refused.text
        cid = submit(api, small_spec(oracle.url, api_key, crafting={"method": "toy-brighten", "delta": 0.2}))
        record = wait_final(api, cid, timeout=180)
    assert record["state"] == "succeeded", record
    results = record["results"]
    assert results["samples"] == 60 and results["noise_samples"] == 60
    assert results["toy_mean_shift"] > 0 and 0 <= results["toy_substitute_changed"] <= 1
    assert results["target_rate"] is None and results.get("hardness") is None
    assert record["spec"]["crafting"] == {"method": "toy-brighten", "delta": 0.2}
    assert record["queries"]["evaluation"] == record["queries"]["baseline"] == 60


def test_the_toy_attack_is_unknown_without_its_plugin(attacker: AttackerStack, oracle: OracleProcess,
                                                       oracle_key: tuple[str, str]) -> None:
    with attacker.client() as api:
        r = api.post("/attacks", json=small_spec(oracle.url, oracle_key[1], crafting={"method": "toy-brighten"}))
    assert r.status_code == 422, r.text
