"""The oracle's HTTP API: label-only predictions, metered per client in Redis."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated, AsyncIterator

import numpy as np
from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from bbrange import __version__
from bbrange.oracle.admin import ClientView
from bbrange.oracle.admin import router as admin_router
from bbrange.oracle.inference import Predictor
from bbrange.oracle.ledger import ChargeStatus, Ledger
from bbrange.oracle.metrics import OracleMetrics
from bbrange.oracle.replays import IDEMPOTENCY_KEY, ClaimStatus, ReplayStore, request_digest
from bbrange.oracle.settings import OracleSettings
from bbrange.shared.devices import resolve_device
from bbrange.shared.http_errors import ApiError, error_response, install_error_handlers
from bbrange.shared.schemas import ErrorBody, ModelInfo, ModelList, PredictRequest, PredictResponse
from bbrange.shared.wire import (
    JSON_MEDIA_TYPE, NPY_MEDIA_TYPE, WireFormatError, check_shape, decode_npy, encode_npy, to_unit_interval,
)

log = logging.getLogger(__name__)

_WIRE_STATUS = {"malformed_npy": 400, "malformed_json": 400}  # the rest are well-formed but unacceptable: 422

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            NPY_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "description": "A NumPy .npy array (batch, C, H, W): float32 in [0, 1] or uint8 in 0..255",
            },
            JSON_MEDIA_TYPE: {"schema": PredictRequest.model_json_schema()},
        },
    }
}


def _error_responses(*codes: int) -> dict[int | str, dict]:
    return {c: {"model": ErrorBody} for c in codes}


async def read_capped_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing (413) as soon as it exceeds limit, whether or not Content-Length is honest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_inputs(body: bytes, content_type: str) -> np.ndarray:
    media = content_type.split(";")[0].strip().lower()
    if media == NPY_MEDIA_TYPE:
        return decode_npy(body)
    if media == JSON_MEDIA_TYPE:
        try:
            request = PredictRequest.model_validate_json(body)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise WireFormatError("malformed_json", f"{where}: {first['msg']}") from None
        try:
            return np.asarray(request.inputs, dtype=np.float32)
        except ValueError:
            raise WireFormatError("wrong_shape", "inputs are ragged: every image must have the same shape") from None
    raise ApiError(415, "unsupported_media_type",
                   f"Content-Type {media or '(none)'} is not supported; send {NPY_MEDIA_TYPE} or {JSON_MEDIA_TYPE}")


def create_app(settings: OracleSettings | None = None) -> FastAPI:
    settings = settings or OracleSettings()
    metrics = OracleMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A bounded pool: a burst of requests queues for a connection instead of opening hundreds.
        pool = BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_max_connections, timeout=settings.redis_timeout_s,
            socket_timeout=settings.redis_timeout_s, socket_connect_timeout=settings.redis_timeout_s,
        )
        redis = Redis(connection_pool=pool)
        app.state.ledger = Ledger(redis, settings.redis_prefix)
        app.state.replays = ReplayStore(redis, settings.redis_prefix, settings.replay_ttl_s)
        app.state.predictor = Predictor(settings.model_dir, resolve_device(settings.device), settings.models)
        try:
            yield
        finally:
            app.state.predictor.close()
            await redis.aclose()

    app = FastAPI(
        title="blackbox-range oracle",
        version=__version__,
        description="Label-only predictions of trained classifiers. One input is one query, charged to the "
                    "client's budget atomically; refusals are JSON bodies that say what is wrong.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(admin_router)

    @app.exception_handler(RedisError)
    async def _redis_down(_: Request, exc: RedisError) -> Response:
        log.warning("redis unavailable: %s", exc)
        metrics.refusals.labels(reason="redis_unavailable", model="").inc()
        return error_response(503, "redis_unavailable",
                              "the budget store is unreachable; no query is answered unmetered, retry later",
                              headers={"Retry-After": "5"})

    async def authenticate(authorization: str | None) -> str:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "unauthorized", "send your API key as 'Authorization: Bearer <key>'",
                           headers={"WWW-Authenticate": "Bearer"})
        ledger: Ledger = app.state.ledger
        client_id = await ledger.client_for_key(key.strip())
        if client_id is None:
            raise ApiError(401, "unauthorized", "unknown API key", headers={"WWW-Authenticate": "Bearer"})
        if await ledger.is_revoked(client_id):
            raise ApiError(403, "revoked", "this API key has been revoked")
        return client_id

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses=_error_responses(503))
    async def readyz() -> dict[str, object]:
        await app.state.ledger.redis.ping()
        return {"status": "ready", "models": sorted(app.state.predictor.models)}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelList, tags=["predict"])
    async def list_models() -> ModelList:
        return ModelList(models=[
            ModelInfo(name=m.card.name, dataset=m.card.dataset, input_shape=m.card.input_shape,
                      num_classes=m.card.num_classes, class_names=m.card.class_names)
            for m in app.state.predictor.models.values()
        ])

    @app.get("/v1/usage", response_model=ClientView, tags=["predict"], responses=_error_responses(401, 403, 503))
    async def usage(authorization: Annotated[str | None, Header()] = None) -> ClientView:
        client_id = await authenticate(authorization)
        client = await app.state.ledger.get_client(client_id)
        if client is None:
            raise ApiError(401, "unauthorized", "unknown API key")
        return ClientView.of(client)

    @app.post(
        "/v1/models/{name}/predict",
        response_model=PredictResponse,
        tags=["predict"],
        openapi_extra=PREDICT_BODY,
        responses={
            **_error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
            200: {"content": {NPY_MEDIA_TYPE: {}},
                  "description": "Labels as JSON, or as an int64 .npy when Accept is application/x-npy"},
        },
    )
    async def predict(
        name: str, request: Request,
        authorization: Annotated[str | None, Header()] = None,
        content_type: Annotated[str, Header()] = "",
        accept: Annotated[str, Header()] = JSON_MEDIA_TYPE,
        idempotency_key: Annotated[str | None, Header(
            description="Any 1-128 characters of A-Z a-z 0-9 . _ : -, new for each batch. A retry with the same "
                        "key and body gets the first answer again and is not charged again.")] = None,
    ) -> Response:
        """Label a batch. Every input is one query: the whole batch is charged and answered, or nothing is."""
        started = time.perf_counter()
        encoding = "npy" if content_type.startswith(NPY_MEDIA_TYPE) else "json"
        try:
            client_id = await authenticate(authorization)
            served = app.state.predictor.models.get(name)
            if served is None:
                raise ApiError(404, "unknown_model", f"no model named {name!r}; GET /v1/models lists them",
                               {"models": sorted(app.state.predictor.models)})
            body = await read_capped_body(request, settings.max_body_bytes)
            try:
                raw = decode_inputs(body, content_type)
                check_shape(raw, served.card.input_shape, settings.max_batch)
                x = to_unit_interval(raw)
            except WireFormatError as e:
                raise ApiError(_WIRE_STATUS.get(e.code, 422), e.code, e.message) from None
            n = int(x.shape[0])
            if idempotency_key is not None:
                replayed = await claim_once(client_id, idempotency_key, name, content_type, body)
                if replayed is not None:
                    metrics.replayed_inputs.labels(client=client_id, model=name).inc(n)
                    client = await app.state.ledger.get_client(client_id)
                    return respond(name, decode_npy(replayed), client.remaining if client else 0, accept,
                                   {"Idempotent-Replayed": "true"})
            charge = await app.state.ledger.charge(client_id, n)
        except ApiError as e:
            reason = {"revoked": "revoked", "unauthorized": "unauthorized", "unknown_model": "unknown_model",
                      "body_too_large": "body_too_large", "request_in_progress": "request_in_progress"
                      }.get(e.code, "bad_input")
            metrics.refusals.labels(reason=reason, model=name if name in app.state.predictor.models else "").inc()
            raise

        budget_headers = {"X-Budget-Remaining": str(charge.remaining)}
        if charge.status is not ChargeStatus.CHARGED:
            if idempotency_key is not None:
                await app.state.replays.release(client_id, idempotency_key)
            reason, status, message, headers = {
                ChargeStatus.BUDGET_EXHAUSTED: ("budget_exhausted", 429,
                                                f"this batch of {n} inputs exceeds the remaining budget of "
                                                f"{charge.remaining}; nothing was charged", budget_headers),
                ChargeStatus.RATE_LIMITED: ("rate_limited", 429, "per-minute rate limit reached; retry later",
                                            {**budget_headers, "Retry-After": str(charge.retry_after_s)}),
                ChargeStatus.BATCH_OVER_RATE: ("rate_limited", 422,
                                               f"a batch of {n} inputs exceeds this client's per-minute rate; "
                                               "send smaller batches", budget_headers),
                ChargeStatus.REVOKED: ("revoked", 403, "this API key has been revoked", {}),
                ChargeStatus.UNKNOWN_CLIENT: ("unauthorized", 401, "unknown API key", {}),
            }[charge.status]
            metrics.refusals.labels(reason=reason, model=name).inc()
            metrics.budget_remaining.labels(client=client_id).set(charge.remaining)
            details = {"remaining": charge.remaining, "requested": n}
            if charge.status is ChargeStatus.RATE_LIMITED:
                details["retry_after_s"] = charge.retry_after_s
            raise ApiError(status, reason, message, details, headers)

        try:
            labels, forward_s = await app.state.predictor.predict(name, x)
        except Exception:
            # The charge bought nothing: give it back before reporting the failure.
            await app.state.ledger.refund(client_id, n)
            if idempotency_key is not None:
                await app.state.replays.release(client_id, idempotency_key)
            metrics.refusals.labels(reason="internal_error", model=name).inc()
            raise
        if idempotency_key is not None:
            try:
                await app.state.replays.answered(client_id, idempotency_key, encode_npy(labels))
            except RedisError as e:
                # The batch is charged and answered: deliver it. A retry of this key is refused (409) until it expires.
                log.warning("could not keep the answer of idempotency key %s: %s", idempotency_key, e)

        metrics.inputs_answered.labels(client=client_id, model=name).inc(n)
        metrics.budget_remaining.labels(client=client_id).set(charge.remaining)
        metrics.batch_size.labels(model=name).observe(n)
        metrics.inference_seconds.labels(model=name).observe(forward_s)
        response = respond(name, labels, charge.remaining, accept)
        metrics.request_seconds.labels(model=name, encoding=encoding).observe(time.perf_counter() - started)
        return response

    async def claim_once(client_id: str, key: str, name: str, content_type: str, body: bytes) -> bytes | None:
        """Claim an idempotency key for this request; the stored answer when it was answered before."""
        if not IDEMPOTENCY_KEY.match(key):
            raise ApiError(422, "bad_idempotency_key", "Idempotency-Key must be 1 to 128 characters of "
                                                       "A-Z a-z 0-9 . _ : -")
        claim = await app.state.replays.claim(client_id, key, request_digest(name, content_type, body))
        if claim.status is ClaimStatus.KEY_REUSED:
            raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key came before with another request "
                                                          "(model, content type or body); send a new key per batch")
        if claim.status is ClaimStatus.IN_PROGRESS:
            raise ApiError(409, "request_in_progress", "a request with this Idempotency-Key is still being "
                                                       "answered; retry shortly", headers={"Retry-After": "1"})
        return claim.labels_npy if claim.status is ClaimStatus.ANSWERED else None

    def respond(name: str, labels: np.ndarray, remaining: int, accept: str,
                headers: dict[str, str] | None = None) -> Response:
        headers = {"X-Budget-Remaining": str(remaining), **(headers or {})}
        if NPY_MEDIA_TYPE in accept:
            return Response(encode_npy(labels), media_type=NPY_MEDIA_TYPE, headers=headers)
        payload = PredictResponse(model=name, labels=labels.tolist(), budget_remaining=remaining)
        return Response(payload.model_dump_json(), media_type=JSON_MEDIA_TYPE, headers=headers)

    return app
