"""A revoked user's queued campaigns never start, so they never spend the oracle key they carry: the API cancels
them when the admin revokes the user, and a worker cancels one that it picks up of a user revoked meanwhile.
The oracle's own ledger (its admin API) shows nothing charged, and each record says why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue

from bbrange.attacker.campaigns.storage.users import UserStore
from bbrange.shared.processes import wait_until
from tests.attacker.conftest import (
    AttackerStack,
    oracle_answered,
    rq_worker_field,
    small_spec,
    start_stack,
    submit,
    wait_final,
)
from tests.conftest import OracleProcess, RedisServer

QUEUE = "bbrange-attacks"


@pytest.fixture
def idle_stack(request: pytest.FixtureRequest, redis_server: RedisServer, data_dir: Path,
               tmp_path_factory: pytest.TempPathFactory, oracle_pair: tuple[OracleProcess, OracleProcess]
               ) -> Iterator[AttackerStack]:
    """The API alone (each test starts its worker when it wants the queue served), on a DB of the test's own."""
    stack = start_stack(redis_server, request.param, tmp_path_factory.mktemp("revoked"), workers=0,
                        oracles=oracle_pair)
    yield stack
    stack.stop()


def _start_idle_worker(stack: AttackerStack, name: str) -> None:
    stack.start_worker(name)
    wait_until(lambda: rq_worker_field(stack.redis_url, name, "state") == "idle", 60, f"worker {name} to be idle")


@pytest.mark.parametrize("idle_stack", [15], indirect=True)
def test_revoking_a_user_cancels_its_queued_campaigns(idle_stack: AttackerStack, oracle: OracleProcess) -> None:
    client_id, key = oracle.create_client(100_000, name="revoked-user")
    uid, token = idle_stack.create_user("to-revoke")
    with idle_stack.client(token) as api:
        revoked_ids = [submit(api, small_spec(oracle.url, key, seed=s)) for s in range(2)]
    with idle_stack.client() as api:  # another user's campaign is left alone
        other = submit(api, small_spec(oracle.url, key))

    with idle_stack.admin() as admin:
        assert admin.post(f"/users/{uid}/revoke").raise_for_status().json()["revoked"] is True
        records = [admin.get(f"/attacks/{cid}").raise_for_status().json() for cid in revoked_ids]
        assert admin.get(f"/attacks/{other}").json()["state"] == "queued"
        admin.post(f"/attacks/{other}/cancel").raise_for_status()
    for record in records:
        assert record["state"] == "cancelled" and record["started_at"] is None, record
        assert record["error"]["code"] == "user_revoked", record
        assert f"({uid}) was revoked" in record["error"]["message"], record
    with redis.Redis.from_url(idle_stack.redis_url) as r:
        assert not set(revoked_ids) & set(Queue(QUEUE, connection=r).job_ids), "their jobs are still queued"

    _start_idle_worker(idle_stack, "after-revoke")  # nothing left for it to start
    assert oracle.usage(client_id)["used"] == 0 == oracle_answered(oracle, client_id)


@pytest.mark.parametrize("idle_stack", [12], indirect=True)
def test_a_worker_cancels_a_campaign_whose_user_was_revoked_meanwhile(idle_stack: AttackerStack,
                                                                      oracle: OracleProcess) -> None:
    client_id, key = oracle.create_client(100_000, name="revoked-meanwhile")
    uid, token = idle_stack.create_user("revoked-meanwhile")
    with idle_stack.client(token) as api:
        cid = submit(api, small_spec(oracle.url, key))
    # The revocation as a submission racing it sees it: the user is revoked, but its campaign stayed queued.
    with redis.Redis.from_url(idle_stack.redis_url) as r:
        assert UserStore(r).revoke(uid) is not None

    idle_stack.start_worker("picks-it-up")
    with idle_stack.admin() as admin:
        record = wait_final(admin, cid, timeout=60)
    assert record["state"] == "cancelled" and record["started_at"] is None, record
    assert record["error"]["code"] == "user_revoked", record
    assert "by the worker that picked it up" in record["error"]["message"], record
    assert record["queries"]["total"] == 0, record
    assert oracle.usage(client_id)["used"] == 0 == oracle_answered(oracle, client_id)
