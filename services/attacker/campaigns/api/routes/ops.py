"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bbrange.attacker.campaigns.api.dependencies import Services
from bbrange.shared.http_errors import error_responses

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
def readyz(svc: Services) -> dict[str, str]:
    svc.connection.ping()
    return {"status": "ready"}


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
                       **error_responses(503)})
def prometheus_metrics(svc: Services) -> Response:
    return Response(generate_latest(svc.registry), media_type=CONTENT_TYPE_LATEST)
