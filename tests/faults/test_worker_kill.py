"""A worker SIGKILLed with its work horse mid-campaign: the campaign is failed with the reason within a few
lease periods, and a new worker under the same name registers and serves the queue."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attacker.conftest import AttackerStack, kill, small_spec, start_stack, submit, wait_final, wait_for
from tests.conftest import OracleProcess, RedisServer

LEASE_TTL_S = 2.0


@pytest.fixture(scope="module")
def killable(redis_server: RedisServer, data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
             oracle_pair: tuple[OracleProcess, OracleProcess]) -> Iterator[AttackerStack]:
    stack = start_stack(redis_server, 4, tmp_path_factory.mktemp("killable"), workers=1, oracles=oracle_pair,
                        extra_env={"BBRANGE_ATTACK_LEASE_TTL_S": str(LEASE_TTL_S)})
    yield stack
    stack.stop()


def test_a_killed_worker_fails_its_campaign_and_a_new_one_serves_the_queue(
        killable: AttackerStack, oracle: OracleProcess) -> None:
    oracle_key = oracle.create_client(100_000, name="worker-kill")
    with killable.client() as api:
        cid = submit(api, small_spec(oracle.url, oracle_key[1], substitute={"rho": 9, "training": {"epochs": 3}}))
        record = wait_for(api, cid, lambda r: len(r["epochs"]) >= 1, what="a first epoch")
        worker = killable.workers[0]
        kill(worker.pid)
        kill(int(re.search(r"pid (\d+)", record["worker"]).group(1)))
        killed = time.monotonic()
        record = wait_final(api, cid, timeout=30)
        noticed = time.monotonic() - killed
        assert record["state"] == "failed" and record["error"]["code"] == "worker_lost", record
        assert "stopped renewing its lease" in record["error"]["message"]
        # The lease expires within one TTL of the last renewal, and the reaper looks every TTL/2.
        assert noticed < 3 * LEASE_TTL_S + 2, noticed

        worker.popen.wait()
        replacement = killable.start_worker("w0-4")  # the same name as the killed one
        cid = submit(api, small_spec(oracle.url, oracle_key[1], substitute={"rho": 1, "training": {"epochs": 1}},
                                     evaluation={"size": 20}))
        record = wait_final(api, cid, timeout=90)
        assert record["state"] == "succeeded", record
        assert replacement.poll() is None
        assert record["worker"].startswith("w0-4/")
