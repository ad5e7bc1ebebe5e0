"""POST /v1/models/{name}/predict: label a batch, charged to the client's budget as a whole or not at all."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Header, Request, Response
from redis.exceptions import RedisError

from bbrange.oracle.dependencies import (
    AuthorizationHeader,
    LedgerDep,
    MetricsDep,
    PredictorDep,
    ReplaysDep,
    SettingsDep,
    authenticate,
)
from bbrange.oracle.ledger import ChargeResult, ChargeStatus
from bbrange.oracle.predict_input import PREDICT_BODY, decode_inputs, read_capped_body
from bbrange.oracle.replays import IDEMPOTENCY_KEY, ClaimStatus, ReplayStore, request_digest
from bbrange.shared.http_errors import ApiError, error_responses
from bbrange.shared.schemas import PredictResponse
from bbrange.shared.wire import (
    JSON_MEDIA_TYPE,
    NPY_MEDIA_TYPE,
    WireFormatError,
    check_shape,
    decode_npy,
    encode_npy,
    to_unit_interval,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["predict"])

_WIRE_STATUS = {"malformed_npy": 400, "malformed_json": 400}  # the rest are well-formed but unacceptable: 422

# The refusal reasons the metrics distinguish; every other refusal before the charge is bad input.
_REFUSAL_REASONS = {"revoked", "unauthorized", "unknown_model", "body_too_large", "request_in_progress",
                    "suspected_extraction"}

IdempotencyKeyHeader = Annotated[str | None, Header(
    description="Any 1-128 characters of A-Z a-z 0-9 . _ : -, new for each batch. A retry with the same "
                "key and body gets the first answer again and is not charged again.")]


@router.post(
    "/models/{name}/predict",
    response_model=PredictResponse,
    openapi_extra=PREDICT_BODY,
    responses={
        **error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
        200: {"content": {NPY_MEDIA_TYPE: {}},
              "description": "Labels as JSON, or as an int64 .npy when Accept is application/x-npy"},
    },
)
async def predict(
    name: str, request: Request,
    settings: SettingsDep, metrics: MetricsDep, ledger: LedgerDep, replays: ReplaysDep, predictor: PredictorDep,
    authorization: AuthorizationHeader = None,
    content_type: Annotated[str, Header()] = "",
    accept: Annotated[str, Header()] = JSON_MEDIA_TYPE,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Label a batch. Every input is one query: the whole batch is charged and answered, or nothing is."""
    started = time.perf_counter()
    encoding = "npy" if content_type.startswith(NPY_MEDIA_TYPE) else "json"
    try:
        # Authenticated here rather than by ClientIdDep, so that its refusals are counted per model like the
        # others, and its Redis round trips are part of request_seconds.
        client_id = await authenticate(ledger, authorization)
        served = predictor.models.get(name)
        if served is None:
            raise ApiError(404, "unknown_model", f"no model named {name!r}; GET /v1/models lists them",
                           {"models": sorted(predictor.models)})
        detection_headers = await request.app.state.detector.admit(client_id, name)  # 403 when blocked
        body = await read_capped_body(request, settings.max_body_bytes)
        try:
            raw = decode_inputs(body, content_type)
            check_shape(raw, served.card.input_shape, settings.max_batch)
            x = to_unit_interval(raw)
        except WireFormatError as e:
            raise ApiError(_WIRE_STATUS.get(e.code, 422), e.code, e.message) from None
        n = int(x.shape[0])
        if idempotency_key is not None:
            replayed = await _claim_once(replays, client_id, idempotency_key, name, content_type, body)
            if replayed is not None:
                metrics.replayed_inputs.labels(client=client_id, model=name).inc(n)
                client = await ledger.get_client(client_id)
                return _respond(name, decode_npy(replayed), client.remaining if client else 0, accept,
                                {"Idempotent-Replayed": "true"})
        charge = await ledger.charge(client_id, n)
    except ApiError as e:
        reason = e.code if e.code in _REFUSAL_REASONS else "bad_input"
        metrics.refusals.labels(reason=reason, model=name if name in predictor.models else "").inc()
        raise

    if charge.status is not ChargeStatus.CHARGED:
        if idempotency_key is not None:
            await replays.release(client_id, idempotency_key)
        refusal = _charge_refused(charge, n)
        metrics.refusals.labels(reason=refusal.code, model=name).inc()
        metrics.budget_remaining.labels(client=client_id).set(charge.remaining)
        raise refusal

    try:
        labels, forward_s = await predictor.predict(name, x)
    except Exception:
        # The charge bought nothing: give it back before reporting the failure.
        await ledger.refund(client_id, n)
        if idempotency_key is not None:
            await replays.release(client_id, idempotency_key)
        metrics.refusals.labels(reason="internal_error", model=name).inc()
        raise
    if idempotency_key is not None:
        try:
            await replays.answered(client_id, idempotency_key, encode_npy(labels))
        except RedisError as e:
            # The batch is charged and answered: deliver it. A retry of this key is refused (409) until it expires.
            log.warning("could not keep the answer of idempotency key %s: %s", idempotency_key, e)

    metrics.inputs_answered.labels(client=client_id, model=name).inc(n)
    metrics.budget_remaining.labels(client=client_id).set(charge.remaining)
    metrics.batch_size.labels(model=name).observe(n)
    metrics.inference_seconds.labels(model=name).observe(forward_s)
    request.app.state.detector.observe(client_id, name, x, labels)  # the extraction detector, off this path
    response = _respond(name, labels, charge.remaining, accept, detection_headers)
    metrics.request_seconds.labels(model=name, encoding=encoding).observe(time.perf_counter() - started)
    return response


def _charge_refused(charge: ChargeResult, n: int) -> ApiError:
    """The refusal of a batch of n inputs that the ledger did not charge; its code is the metrics' reason."""
    budget_headers = {"X-Budget-Remaining": str(charge.remaining)}
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
    details = {"remaining": charge.remaining, "requested": n}
    if charge.status is ChargeStatus.RATE_LIMITED:
        details["retry_after_s"] = charge.retry_after_s
    return ApiError(status, reason, message, details, headers)


async def _claim_once(replays: ReplayStore, client_id: str, key: str, name: str, content_type: str,
                      body: bytes) -> bytes | None:
    """Claim an idempotency key for this request; the stored answer when it was answered before."""
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiError(422, "bad_idempotency_key", "Idempotency-Key must be 1 to 128 characters of "
                                                   "A-Z a-z 0-9 . _ : -")
    claim = await replays.claim(client_id, key, request_digest(name, content_type, body))
    if claim.status is ClaimStatus.KEY_REUSED:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key came before with another request "
                                                      "(model, content type or body); send a new key per batch")
    if claim.status is ClaimStatus.IN_PROGRESS:
        raise ApiError(409, "request_in_progress", "a request with this Idempotency-Key is still being "
                                                   "answered; retry shortly", headers={"Retry-After": "1"})
    return claim.labels_npy if claim.status is ClaimStatus.ANSWERED else None


def _respond(name: str, labels: np.ndarray, remaining: int, accept: str,
             headers: dict[str, str] | None = None) -> Response:
    headers = {"X-Budget-Remaining": str(remaining), **(headers or {})}
    if NPY_MEDIA_TYPE in accept:
        return Response(encode_npy(labels), media_type=NPY_MEDIA_TYPE, headers=headers)
    payload = PredictResponse(model=name, labels=labels.tolist(), budget_remaining=remaining)
    return Response(payload.model_dump_json(), media_type=JSON_MEDIA_TYPE, headers=headers)
