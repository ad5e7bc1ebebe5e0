"""What the oracle's routes depend on, as typed FastAPI dependencies.

The settings and metrics are put on `app.state` by `create_app`; the Redis-backed stores and the loaded
models by the lifespan, when the process starts serving. A route names what it needs
(`ledger: LedgerDep`) instead of reaching into `request.app.state`. Who is calling is decided in accounts.auth;
the dependencies here only hand it the request's header and address. They are `async def` though they never
wait: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request (~15% of the oracle's
samples under 64 single-input clients, py-spy).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from bbrange.oracle.accounts.auth import authenticate, check_admin
from bbrange.oracle.accounts.ledger import Ledger
from bbrange.oracle.detection.detector import Detector
from bbrange.oracle.query_metrics import OracleMetrics
from bbrange.oracle.serving.answering import Services
from bbrange.oracle.serving.predictor import Predictor
from bbrange.oracle.serving.replays import ReplayStore
from bbrange.oracle.settings import OracleSettings


async def get_settings(request: Request) -> OracleSettings:
    settings: OracleSettings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> OracleMetrics:
    metrics: OracleMetrics = request.app.state.metrics
    return metrics


async def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


async def get_replays(request: Request) -> ReplayStore:
    replays: ReplayStore = request.app.state.replays
    return replays


async def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


async def get_detector(request: Request) -> Detector:
    detector: Detector = request.app.state.detector
    return detector


async def get_services(request: Request) -> Services:
    state = request.app.state
    return Services(state.settings, state.metrics, state.ledger, state.replays, state.predictor, state.detector)


SettingsDep = Annotated[OracleSettings, Depends(get_settings)]
MetricsDep = Annotated[OracleMetrics, Depends(get_metrics)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ReplaysDep = Annotated[ReplayStore, Depends(get_replays)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
DetectorDep = Annotated[Detector, Depends(get_detector)]
ServicesDep = Annotated[Services, Depends(get_services)]
AuthorizationHeader = Annotated[str | None, Header()]


def source_address(request: Request) -> str:
    """The peer's address, or the client's as a trusted proxy forwards it (BBRANGE_FORWARDED_ALLOW_IPS, applied
    by uvicorn before the request gets here)."""
    return request.client.host if request.client is not None else "unknown"


async def authenticated_client(request: Request, ledger: LedgerDep, settings: SettingsDep,
                               authorization: AuthorizationHeader = None) -> str:
    return await authenticate(ledger.clients, authorization, source_address(request),
                              settings.auth_failures_per_minute)


ClientIdDep = Annotated[str, Depends(authenticated_client)]


async def require_admin(settings: SettingsDep, authorization: AuthorizationHeader = None) -> None:
    check_admin(settings.admin_token, authorization)
