"""The job queue both processes share: the API puts a campaign on it (and takes a cancelled one off), the workers
(worker.entry) take campaigns from it. Campaigns are RQ jobs on Redis; see worker.entry for why RQ.

The job and its failure callback are named, not imported: RQ stores a job's function by its dotted name anyway,
and so the API never loads the worker (nor, through it, the engine and torch)."""

from __future__ import annotations

import contextlib

import redis
from rq import Callback, Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from bbrange.attacker.campaigns.settings import AttackerSettings

_ENTRY = "bbrange.attacker.campaigns.worker.entry"
RUN_CAMPAIGN_JOB = f"{_ENTRY}.run_campaign_job"
CAMPAIGN_JOB_FAILED = f"{_ENTRY}.campaign_job_failed"


def queue_for(connection: redis.Redis, settings: AttackerSettings) -> Queue:
    return Queue(settings.queue_name, connection=connection)


def enqueue_campaign(queue: Queue, campaign_id: str, settings: AttackerSettings) -> Job:
    return queue.enqueue_call(
        RUN_CAMPAIGN_JOB, args=(campaign_id,), job_id=campaign_id, timeout=settings.job_timeout_s,
        result_ttl=7 * 24 * 3600, failure_ttl=7 * 24 * 3600, description=f"campaign {campaign_id}",
        on_failure=Callback(CAMPAIGN_JOB_FAILED),
    )


def drop_queued_job(connection: redis.Redis, campaign_id: str) -> None:
    """Take a cancelled campaign's job off the queue (a worker would skip it anyway)."""
    with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
        Job.fetch(campaign_id, connection=connection).cancel()


def is_enqueued(connection: redis.Redis, campaign_id: str) -> bool:
    return Job.exists(campaign_id, connection=connection)
