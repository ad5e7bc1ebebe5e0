"""Probes and metrics for the platform: liveness, readiness (Redis reachable, models loaded), Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bbrange.oracle.api.dependencies import LedgerDep, MetricsDep, PredictorDep
from bbrange.shared.http_errors import error_responses

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
async def readyz(ledger: LedgerDep, predictor: PredictorDep) -> dict[str, object]:
    # A RedisError here is answered 503 by the app's handler: alive, but not ready to meter queries.
    await ledger.redis.ping()
    return {"status": "ready", "models": sorted(predictor.models)}


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
async def prometheus_metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
