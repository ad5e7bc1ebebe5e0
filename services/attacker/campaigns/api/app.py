"""The attacker's HTTP API: submit, follow, cancel campaigns, and fetch their adversarial samples.

Nothing heavy runs here: campaigns go to the RQ queue and run in worker processes. The API only reads
and writes campaign state in Redis and reads sample files from the shared data directory; it never
imports the engine (nor torch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from redis.exceptions import RedisError
from starlette.routing import Match

from bbrange import __version__
from bbrange.attacker.campaigns.api.body_limit import BodyLimit
from bbrange.attacker.campaigns.api.dependencies import AttackerServices
from bbrange.attacker.campaigns.api.routes import campaigns, ops, reports, samples, users
from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.storage.job_queue import is_enqueued
from bbrange.attacker.campaigns.storage.records import CampaignState
from bbrange.shared.http_errors import error_response, install_error_handlers

log = logging.getLogger(__name__)


# A queued campaign whose job is not on the queue this long after its creation was never enqueued.
ENQUEUE_GRACE_S = 60.0


def _sweep(svc: AttackerServices) -> None:
    """Fail what no worker will ever finish: running campaigns whose lease expired, queued ones never enqueued."""
    for cid in svc.store.reap_lost():
        svc.samples.remove_upload(cid)
    for cid in svc.store.queued_before(ENQUEUE_GRACE_S):
        if not is_enqueued(svc.connection, cid) and svc.store.fail(
                cid, "enqueue_failed", lambda _: "the campaign never reached the job queue; submit it again",
                {CampaignState.queued}) is not None:
            svc.samples.remove_upload(cid)


async def _reap_forever(svc: AttackerServices) -> None:
    # A campaign whose worker vanished must not read "running" forever, even if nobody asks about it. After a
    # Redis outage the leases may have expired while their workers were alive and waiting: they get a whole
    # lease period of Redis uptime to renew before anything is reaped.
    last_outage = float("-inf")
    while True:
        await asyncio.sleep(max(svc.settings.lease_ttl_s / 2, 0.5))
        try:
            if time.monotonic() - last_outage < svc.settings.lease_ttl_s:
                await run_in_threadpool(svc.connection.ping)
            else:
                await run_in_threadpool(_sweep, svc)
        except RedisError as e:
            last_outage = time.monotonic()
            log.warning("cannot reap lost campaigns: %s", e)


async def _redis_down(_: Request, exc: Exception) -> Response:
    log.warning("redis unavailable: %s", exc)
    return error_response(503, "redis_unavailable", "the campaign store is unreachable; retry later",
                          headers={"Retry-After": "5"})


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def _method_not_allowed(request: Request, _: Exception) -> Response:
    # Starlette's own 405 names the methods of the first route on the path only (POST for /attacks, not GET):
    # ask every route which methods it takes on this path.
    allowed = [m for m in _METHODS if any(route.matches({**request.scope, "method": m})[0] is Match.FULL
                                          for route in request.app.router.routes)]
    return error_response(405, "method_not_allowed", f"{request.method} is not allowed here; use "
                          f"{', '.join(allowed)}", {"allow": allowed}, headers={"Allow": ", ".join(allowed)})


def create_app(settings: AttackerSettings | None = None) -> FastAPI:
    svc = AttackerServices.connect(settings or AttackerSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reaper = asyncio.create_task(_reap_forever(svc))
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            svc.connection.close()

    app = FastAPI(
        title="blackbox-range attacker",
        version=__version__,
        description="Black-box attack campaigns (Papernot et al.) against a remote label-only oracle: a substitute "
                    "trained by Jacobian-based augmentation, FGSM or JSMA crafted on it, transfer measured on the "
                    "oracle. Campaigns run in worker processes; this API queues, follows and cancels them.",
        lifespan=lifespan,
    )
    app.state.services = svc
    install_error_handlers(app)
    app.add_exception_handler(RedisError, _redis_down)
    app.add_exception_handler(405, _method_not_allowed)
    for module in (ops, users, campaigns, samples, reports):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=svc.settings.max_request_bytes)
    return app
