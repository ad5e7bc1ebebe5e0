"""A campaign whose RQ job fails before the runner has claimed it ends failed with the reason, not "queued" for ever.

The failure here is real: the work horse's own Redis URL points at a port nobody listens on (a misconfigured
worker), while the worker itself dequeues from the real Redis, so the job raises before it can claim the
campaign. RQ then runs the job's failure callback, which must fail the campaign through the worker's connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Worker

from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.storage import job_queue
from bbrange.attacker.campaigns.storage.campaign_store import CampaignStore
from bbrange.attacker.campaigns.storage.records import CampaignRecord, CampaignState, utcnow
from bbrange.attacker.campaigns.storage.samples import SampleStore
from bbrange.attacker.campaigns.worker import entry
from bbrange.shared.processes import free_port
from tests.conftest import RedisServer

PREFIX = "test-jobfail"


@pytest.fixture
def connection(redis_server: RedisServer) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/5")
    yield conn
    conn.flushdb()
    conn.close()


def test_job_failing_before_the_claim_fails_the_queued_campaign(connection: redis.Redis, tmp_path: Path) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    settings = AttackerSettings(redis_url=unreachable, redis_retry_s=0, redis_prefix=PREFIX, data_dir=tmp_path,
                                queue_name="test-jobfail")
    entry.configure(settings)
    try:
        store = CampaignStore(connection, PREFIX)
        cid = uuid.uuid4().hex
        upload = SampleStore(tmp_path).upload_path(cid)
        upload.parent.mkdir()
        upload.write_bytes(b"not needed any more")
        store.create(CampaignRecord(id=cid, state=CampaignState.queued, created_at=utcnow(), spec={}), "{}")
        queue = job_queue.queue_for(connection, settings)
        job_queue.enqueue_campaign(queue, cid, settings)

        Worker([queue], connection=connection).work(burst=True)

        record = store.get(cid)
        assert record is not None and record.state is CampaignState.failed, record
        assert record.error is not None and record.error.code == "internal_error"
        assert "before it could record an outcome" in record.error.message
        assert "ConnectionError" in record.error.message  # the job's own exception, not a generic text
        assert not upload.exists()  # an ended campaign's upload goes
        assert store.queued_before(-1) == []
    finally:
        entry.configure(AttackerSettings())


def test_failure_callback_leaves_a_finished_campaign_alone(connection: redis.Redis, tmp_path: Path) -> None:
    """A job may raise after the runner recorded the outcome (say, while releasing its lease): the outcome stays."""
    entry.configure(AttackerSettings(redis_prefix=PREFIX, data_dir=tmp_path))
    try:
        store = CampaignStore(connection, PREFIX)
        cid = uuid.uuid4().hex
        record = CampaignRecord(id=cid, state=CampaignState.succeeded, created_at=utcnow(), spec={})
        store.create(record, "{}")

        class Job:
            id = cid

        entry.campaign_job_failed(Job(), connection, RuntimeError, RuntimeError("late"), None)  # type: ignore[arg-type]
        after = store.get(cid)
        assert after is not None and after.state is CampaignState.succeeded and after.error is None
    finally:
        entry.configure(AttackerSettings())


def test_the_queue_names_the_worker_entry_points() -> None:
    """The API enqueues by dotted name (it never imports the worker): the names must stay the worker's functions."""
    assert f"{entry.__name__}.{entry.run_campaign_job.__name__}" == job_queue.RUN_CAMPAIGN_JOB
    assert f"{entry.__name__}.{entry.campaign_job_failed.__name__}" == job_queue.CAMPAIGN_JOB_FAILED
