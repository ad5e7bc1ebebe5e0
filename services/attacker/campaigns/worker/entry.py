"""The worker's side of the job queue: the RQ job that runs one campaign, its failure callback, and the worker
process (`bbrange attack worker`) that takes campaigns from the queue (storage.job_queue).

Why RQ (see the README): one forked work horse per job isolates each campaign's torch memory and
crashes from the worker, which notices a dead horse and fails the job; it is plain synchronous Python,
which is what CPU- or GPU-bound torch work wants; and it has no automatic redelivery, so a campaign
whose worker died is never silently re-run (that would spend the oracle budget twice): it is failed
with the reason instead, by the horse-death handler below or, when the whole worker vanished, by lease
expiry (CampaignStore.reap_lost).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from resource import struct_rusage
from types import FrameType, TracebackType
from typing import Any

import redis
from rq import Worker
from rq.exceptions import StopRequested
from rq.job import Job
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, retry_never, wait_fixed

from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.storage.campaign_store import CampaignStore
from bbrange.attacker.campaigns.storage.connections import connect
from bbrange.attacker.campaigns.storage.job_queue import queue_for
from bbrange.attacker.campaigns.storage.records import CampaignRecord, CampaignState
from bbrange.attacker.campaigns.storage.samples import SampleStore
from bbrange.shared.processes import die_with_parent

log = logging.getLogger(__name__)

_settings: AttackerSettings | None = None


def configure(settings: AttackerSettings) -> None:
    """Settings for the jobs this process (and the work horses it forks) will run."""
    global _settings
    _settings = settings


def current_settings() -> AttackerSettings:
    return _settings if _settings is not None else AttackerSettings()


def run_campaign_job(campaign_id: str) -> str | None:
    """The RQ job: run one campaign in this work horse. Returns its final state."""
    import torch

    from bbrange.attacker.campaigns.worker.runner import CampaignRunner

    # The work horse never outlives its worker (killed, or stopped cold): a campaign with nobody to record it
    # is failed by its lease, not left training. (RQ puts the horse in a session of its own.)
    die_with_parent(signal.SIGKILL)
    settings = current_settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    store = CampaignStore.from_url(settings.redis_url, settings.redis_prefix, settings.redis_retry_s)
    runner = CampaignRunner(store, SampleStore(settings.data_dir), settings,
                            worker_name=os.environ.get("RQ_WORKER_ID", ""))
    state = runner.run(campaign_id)
    return None if state is None else state.value


def campaign_job_failed(job: Job, connection: redis.Redis, exc_type: type[BaseException], exc_value: BaseException,
                        traceback: TracebackType | None) -> None:
    """RQ's failure callback. The runner records every outcome once it has claimed the campaign; a job that
    raised before that (the work horse could not reach Redis at its own URL, a broken install) would
    otherwise leave the campaign reading "queued" for ever."""
    settings = current_settings()
    store = CampaignStore(connection, settings.redis_prefix)
    reason = f"{exc_type.__name__}: {exc_value}"
    if store.fail(job.id, "internal_error", lambda _: f"the campaign's job failed before it could record an outcome: "
                  f"{reason} (see the worker log)",
                  {CampaignState.queued, CampaignState.running}) is not None:
        SampleStore(settings.data_dir).remove_upload(job.id)
        log.warning("campaign %s failed: its job raised %s", job.id, reason)


def forget_dead_namesake(connection: redis.Redis, name: str) -> bool:
    """Drop the registration of a worker of this name that died on this host without unregistering (killed),
    which would otherwise refuse a restart under the same name for minutes. True if one was dropped."""
    key = Worker.redis_worker_namespace_prefix + name
    found = connection.hmget(key, ["hostname", "pid", "death"])
    host, pid, death = (v.decode() if isinstance(v, bytes) else v for v in found)
    if host is None or death is not None or host != socket.gethostname() or pid is None:
        return False
    if int(pid) != os.getpid():  # our own earlier registration (RQ quit on a Redis failure) goes too
        try:
            os.kill(int(pid), 0)
            return False  # alive: a real namesake
        except ProcessLookupError:
            pass
        except PermissionError:
            return False
    with connection.pipeline() as pipe:
        pipe.delete(key)
        pipe.srem(Worker.redis_workers_keys, key)
        pipe.execute()
    log.warning("dropped the registration of worker %s (pid %s on this host is gone)", name, pid)
    return True


@dataclass
class StopRequest:
    """SIGTERM or SIGINT came. Set from signal handlers, so a plain attribute: a lock (threading.Event's) taken
    in a handler may be held by the very code the signal interrupted."""

    requested: bool = False


class CampaignWorker(Worker):
    """RQ's worker, sharing a stop request with the loop that runs it: RQ's work() returns in the same way when
    SIGTERM stopped it idle and when it quit on a Redis failure, and only the latter is a reason to start it again.
    """

    def __init__(self, *args: Any, stop: StopRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop = stop

    def handle_warm_shutdown_request(self) -> None:  # RQ calls this on its first SIGTERM or SIGINT, busy or idle
        self.stop.requested = True
        super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]  # RQ leaves it unannotated

    def check_for_suspension(self, burst: bool) -> None:
        # The top of RQ's loop, where its own signal handlers are in place: a signal that came while it was
        # starting reached ours instead, and would otherwise be forgotten while the worker waits for a job.
        if self.stop.requested:
            raise StopRequested()
        super().check_for_suspension(burst)


class WorkLoopEnded(Exception):
    """RQ's work loop returned unasked: it quits on a Redis failure that outlasted the connection's retries."""


def make_worker(settings: AttackerSettings, name: str | None = None,
                stop: StopRequest | None = None) -> CampaignWorker:
    # Every call of the worker (dequeue, heartbeats, job bookkeeping) rides out a Redis outage.
    connection = connect(settings.redis_url, retry_s=settings.redis_retry_s, socket_timeout_s=None)
    store = CampaignStore(connection, settings.redis_prefix)
    samples = SampleStore(settings.data_dir)
    if name is not None:
        forget_dead_namesake(connection, name)

    def horse_died(job: Job, pid: int, status: int, rusage: struct_rusage) -> None:
        signal_text = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {status >> 8}"

        def message(r: CampaignRecord) -> str:
            return (f"the process running this campaign (pid {pid}) died with {signal_text} during phase "
                    f"{r.phase.value} (killed, or out of memory); queries spent are reported as last recorded")

        if store.fail(job.id, "worker_lost", message, {CampaignState.running}) is not None:
            samples.remove_upload(job.id)
            log.warning("campaign %s failed: its work horse %s died (%s)", job.id, pid, signal_text)

    return CampaignWorker([queue_for(connection, settings)], connection=connection, name=name,
                          work_horse_killed_handler=horse_died, stop=stop or StopRequest())


def run_worker(settings: AttackerSettings, name: str | None, *, burst: bool, logging_level: str) -> None:
    """Run campaigns from the queue until SIGTERM or SIGINT, or with burst until the queue is empty.

    The first signal stops an idle worker at once and a busy one after its campaign (RQ's warm shutdown; a
    second signal is RQ's cold one). No Redis outage ends the worker: RQ's loop is started again 5 s after it
    quit (a namesake registration of ours is dropped on the way), unless a signal came meanwhile.
    """
    stop = StopRequest()

    def stop_between_loops(signum: int, frame: FrameType | None) -> None:
        stop.requested = True

    def pause(seconds: float) -> None:  # a signal ends the pause before a restart
        deadline = time.monotonic() + seconds
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(0.1)

    def work_once() -> None:
        # Ours until RQ installs its own handlers in work(), and again once it returns (RQ leaves its handlers
        # behind, which would raise StopRequested from the pause below).
        signal.signal(signal.SIGTERM, stop_between_loops)
        signal.signal(signal.SIGINT, stop_between_loops)
        if stop.requested:
            return
        rq_worker = make_worker(settings, name, stop)
        try:
            rq_worker.work(burst=burst, logging_level=logging_level, with_scheduler=False)
        except redis.RedisError as e:
            if not stop.requested:
                raise
            # Asked to stop, it could not unregister: RQ's registration of it expires on its own.
            log.warning("worker stopped; Redis failed on the way out (%s)", e)
        finally:
            signal.signal(signal.SIGTERM, stop_between_loops)
            signal.signal(signal.SIGINT, stop_between_loops)
        if not (burst or stop.requested):
            raise WorkLoopEnded("RQ's work loop quit on its own (a Redis failure: see the lines above)")

    Retrying(retry=retry_never if burst else retry_if_exception_type((redis.RedisError, WorkLoopEnded)),
             wait=wait_fixed(5), sleep=pause, before_sleep=before_sleep_log(log, logging.WARNING),
             reraise=True)(work_once)
