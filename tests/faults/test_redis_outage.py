"""Redis stops and comes back (a restart with its append-only file): the oracle's pooled connections cost no
503, and a campaign in its substitute phase rides the outage out and succeeds, with the queries it counted
equal to what the oracle charged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from bbrange.shared.processes import free_port
from bbrange.shared.wire import NPY_MEDIA_TYPE, encode_npy
from tests.attacker.conftest import AttackerStack, oracle_answered, small_spec, start_stack, submit
from tests.conftest import OracleProcess, start_oracle
from tests.faults.conftest import PersistentRedis, poll_record


@pytest.fixture(scope="module")
def redis_aof(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PersistentRedis]:
    server = PersistentRedis(free_port(), tmp_path_factory.mktemp("redis-aof"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def outage_oracle(quick_model_dir: Path, redis_aof: PersistentRedis, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[OracleProcess]:
    oracle = start_oracle(quick_model_dir, redis_aof.url(0), "bbfault", tmp_path_factory.mktemp("logs"),
                          extra_env={"BBRANGE_REDIS_TIMEOUT_S": "1"})
    yield oracle
    oracle.stop()


@pytest.fixture(scope="module")
def outage_stack(redis_aof: PersistentRedis, outage_oracle: OracleProcess, data_dir: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackerStack]:
    stack = start_stack(redis_aof, 1, tmp_path_factory.mktemp("outage"), workers=1, oracles=[outage_oracle],
                        extra_env={"BBRANGE_ATTACK_ORACLE_BATCH_SIZE": "16"})
    yield stack
    stack.stop()


def test_a_redis_restart_costs_the_oracle_no_503(redis_aof: PersistentRedis, outage_oracle: OracleProcess) -> None:
    _, key = outage_oracle.create_client(100)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": NPY_MEDIA_TYPE}
    x = encode_npy(np.zeros((2, 1, 28, 28), np.float32))
    url = f"{outage_oracle.url}/v1/models/mnist/predict"
    with httpx.Client(timeout=30) as http:
        for _ in range(4):  # several pooled connections in use
            assert http.post(url, content=x, headers=headers).status_code == 200
        redis_aof.stop()
        redis_aof.start()
        statuses = [http.post(url, content=x, headers=headers).status_code for _ in range(4)]
    assert statuses == [200] * 4


def test_a_campaign_rides_out_redis_stopped_for_5_s(redis_aof: PersistentRedis, outage_oracle: OracleProcess,
                                                   outage_stack: AttackerStack) -> None:
    client_id, api_key = outage_oracle.create_client(100_000)
    spec = small_spec(outage_oracle.url, api_key, substitute={"rho": 3, "training": {"epochs": 2}},
                      evaluation={"size": 40})
    with outage_stack.client() as api:
        cid = submit(api, spec)
        poll_record(api, cid, lambda r: len(r["epochs"]) >= 1, timeout=60)  # labelling and training under way
        redis_aof.stop()
        time.sleep(5)
        redis_aof.start()
        record = poll_record(api, cid, lambda r: r["state"] in ("succeeded", "failed", "cancelled"), timeout=120)
    assert record["state"] == "succeeded", record
    q = record["queries"]
    assert (q["labelling"], q["agreement"], q["evaluation"], q["baseline"]) == (240, 40, 40, 40)
    assert q["total"] == outage_oracle.usage(client_id)["used"] == oracle_answered(outage_oracle, client_id) == 360
    assert all(w.poll() is None for w in outage_stack.workers), "a worker exited"
