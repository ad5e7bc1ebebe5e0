"""The oracle's HTTP API: label-only predictions, metered per client in Redis.

`create_app` only wires: the routers of `bbrange.oracle.api.routes`, the error handlers, and the lifespan that
opens Redis and loads the models. What a route needs comes from `bbrange.oracle.api.dependencies`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bbrange import __version__
from bbrange.oracle.accounts.ledger import Ledger
from bbrange.oracle.api.routes import admin, admin_models, health, models, predict, v2
from bbrange.oracle.detection import routes as detection
from bbrange.oracle.detection.detector import Detector
from bbrange.oracle.query_metrics import OracleMetrics
from bbrange.oracle.serving.predictor import BatchingSettings, Predictor
from bbrange.oracle.serving.replays import ReplayStore
from bbrange.oracle.settings import OracleSettings
from bbrange.shared.devices import resolve_device
from bbrange.shared.http_errors import error_response, install_error_handlers

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: OracleSettings = app.state.settings
    # A bounded pool: a burst of requests queues for a connection instead of opening hundreds. Pooled connections
    # are health-checked and a broken one is replaced at once (a Redis restart costs no 503); a Redis that is
    # really down still answers 503 within the timeout.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections, timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s, socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=5, retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        retry_on_error=[RedisConnectionError],
    )
    redis = Redis(connection_pool=pool)
    app.state.ledger = Ledger(redis, settings.redis_prefix, settings.recent_cache_ttl_s)
    replays = app.state.replays = ReplayStore(redis, settings.redis_prefix, settings.replay_ttl_s)
    batching = BatchingSettings(settings.dynamic_batching, settings.batch_max_inputs,
                                settings.batch_max_delay_ms / 1000)
    metrics: OracleMetrics = app.state.metrics
    predictor = Predictor(settings.model_dir, resolve_device(settings.device), settings.models, batching,
                          observe=metrics.observe_forward)
    app.state.predictor = predictor
    app.state.detector = Detector(redis, settings.redis_prefix, app.state.metrics,
                                  cache_ttl_s=settings.recent_cache_ttl_s)
    app.state.detector.start()
    alive = asyncio.create_task(replays.keep_alive())
    try:
        yield
    finally:
        alive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await alive
        await replays.stop()
        await app.state.detector.close()
        predictor.close()
        await redis.aclose()


async def redis_unavailable(request: Request, exc: Exception) -> Response:
    """Fail closed: without the budget store no query is answered, and the client is told to come back."""
    log.warning("redis unavailable: %s", exc)
    metrics: OracleMetrics = request.app.state.metrics
    metrics.refusals.labels(reason="redis_unavailable", model="").inc()
    return error_response(503, "redis_unavailable",
                          "the budget store is unreachable; no query is answered unmetered, retry later",
                          headers={"Retry-After": "5"})


def create_app(settings: OracleSettings | None = None) -> FastAPI:
    app = FastAPI(
        title="blackbox-range oracle",
        version=__version__,
        description="Label-only predictions of trained classifiers. One input is one query, charged to the "
                    "client's budget atomically; refusals are JSON bodies that say what is wrong.",
        lifespan=lifespan,
    )
    app.state.settings = settings or OracleSettings()
    app.state.metrics = OracleMetrics()
    install_error_handlers(app)
    app.add_exception_handler(RedisError, redis_unavailable)
    for module in (admin, admin_models, detection, health, models, predict, v2):
        app.include_router(module.router)
    return app
