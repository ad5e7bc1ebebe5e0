"""What the oracle's routes depend on, as typed FastAPI dependencies.

The settings and metrics are put on `app.state` by `create_app`; the Redis-backed stores and the loaded
models by the lifespan, when the process starts serving. A route names what it needs
(`ledger: LedgerDep`) instead of reaching into `request.app.state`.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from bbrange.oracle.accounts.ledger import Ledger
from bbrange.oracle.query_metrics import OracleMetrics
from bbrange.oracle.serving.predictor import Predictor
from bbrange.oracle.serving.replays import ReplayStore
from bbrange.oracle.settings import OracleSettings
from bbrange.shared.http_errors import ApiError


def get_settings(request: Request) -> OracleSettings:
    settings: OracleSettings = request.app.state.settings
    return settings


def get_metrics(request: Request) -> OracleMetrics:
    metrics: OracleMetrics = request.app.state.metrics
    return metrics


def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def get_replays(request: Request) -> ReplayStore:
    replays: ReplayStore = request.app.state.replays
    return replays


def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


SettingsDep = Annotated[OracleSettings, Depends(get_settings)]
MetricsDep = Annotated[OracleMetrics, Depends(get_metrics)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ReplaysDep = Annotated[ReplayStore, Depends(get_replays)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
AuthorizationHeader = Annotated[str | None, Header()]


def source_address(request: Request) -> str:
    """The peer's address, or the client's as a trusted proxy forwards it (BBRANGE_FORWARDED_ALLOW_IPS, applied
    by uvicorn before the request gets here)."""
    return request.client.host if request.client is not None else "unknown"


async def authenticate(ledger: Ledger, authorization: str | None, source: str, failure_limit: int, *,
                       charge_follows: bool = False) -> str:
    """The client id behind 'Authorization: Bearer <key>'; 401 for a missing or unknown key, 403 if revoked.

    With charge_follows (the predict path, whose charge refuses a revoked client in Redis) a key resolved in the
    last BBRANGE_KEY_CACHE_TTL_S seconds costs no round trip.

    A known key is always accepted, whatever its address sent before: the campaigns of many users may leave
    from one address. An unknown key costs one Redis round trip, and once its source address has sent more than
    failure_limit of them in a minute it gets 429 with Retry-After (before anything else is done for it) until
    the minute is over."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "send your API key as 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    key = key.strip()
    if charge_follows and (cached := ledger.cached_client(key)) is not None:
        return cached
    lookup = await ledger.resolve_key(key, source)
    if lookup.client_id is None:
        if lookup.source_failures > failure_limit:
            wait = lookup.retry_after_s
            raise ApiError(429, "too_many_auth_failures", f"too many unknown API keys from this address; retry in "
                           f"{wait} s", {"retry_after_s": wait}, headers={"Retry-After": str(wait)})
        raise ApiError(401, "unauthorized", "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    if lookup.revoked:
        raise ApiError(403, "revoked", "this API key has been revoked")
    return lookup.client_id


async def authenticated_client(request: Request, ledger: LedgerDep, settings: SettingsDep,
                               authorization: AuthorizationHeader = None) -> str:
    return await authenticate(ledger, authorization, source_address(request), settings.auth_failures_per_minute)


ClientIdDep = Annotated[str, Depends(authenticated_client)]


def require_admin(settings: SettingsDep, authorization: AuthorizationHeader = None) -> None:
    token = settings.admin_token
    if token is None:
        raise ApiError(403, "admin_disabled", "the admin API is disabled: set BBRANGE_ADMIN_TOKEN on the oracle")
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(presented.encode(), token.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "admin endpoints need 'Authorization: Bearer <admin token>'",
                       headers={"WWW-Authenticate": "Bearer"})
