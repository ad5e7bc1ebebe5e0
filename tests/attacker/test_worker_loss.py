"""A campaign whose worker dies ends failed with the reason, never "running" forever; restarting the API
loses nothing finished."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attacker.conftest import AttackerStack, kill, small_spec, start_stack, submit, wait_final, wait_for
from tests.conftest import OracleProcess, RedisServer


@pytest.fixture(scope="module")
def fragile(redis_server: RedisServer, data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
            oracle_pair: tuple[OracleProcess, OracleProcess]) -> Iterator[AttackerStack]:
    """Its own DB and a short lease, so that a vanished worker is noticed within seconds."""
    stack = start_stack(redis_server, 2, tmp_path_factory.mktemp("fragile"), workers=1,
                        extra_env={"BBRANGE_ATTACK_LEASE_TTL_S": "2"}, oracles=oracle_pair)
    yield stack
    stack.stop()


def _horse_pid(record: dict) -> int:
    return int(re.search(r"pid (\d+)", record["worker"]).group(1))


def _long_spec(oracle: OracleProcess, api_key: str) -> dict:
    return small_spec(oracle.url, api_key, substitute={"rho": 9, "training": {"epochs": 3}})


def test_killed_campaign_process_fails_the_campaign(fragile: AttackerStack, oracle: OracleProcess,
                                                    oracle_key: tuple[str, str]) -> None:
    with fragile.client() as api:
        cid = submit(api, _long_spec(oracle, oracle_key[1]))
        record = wait_for(api, cid, lambda r: len(r["epochs"]) >= 1, what="a first epoch")
        kill(_horse_pid(record))  # the worker survives and notices
        record = wait_final(api, cid, timeout=30)
        assert record["state"] == "failed" and record["error"]["code"] == "worker_lost", record
        assert "signal 9" in record["error"]["message"]
        assert record["epochs"]  # what was recorded stays


def test_vanished_worker_fails_the_campaign_and_api_restart_keeps_it(
        fragile: AttackerStack, oracle: OracleProcess, oracle_key: tuple[str, str]) -> None:
    with fragile.client() as api:
        cid = submit(api, _long_spec(oracle, oracle_key[1]))
        record = wait_for(api, cid, lambda r: len(r["epochs"]) >= 1, what="a first epoch")
        worker = next(w for w in fragile.workers if w.poll() is None)
        kill(worker.pid)  # the whole worker host is gone: parent and work horse
        kill(_horse_pid(record))
        record = wait_final(api, cid, timeout=30)
        assert record["state"] == "failed" and record["error"]["code"] == "worker_lost", record
        assert "stopped renewing its lease" in record["error"]["message"]

    fragile.stop_api()
    fragile.start_api()
    with fragile.client() as api:
        assert api.get(f"/attacks/{cid}").json() == record
