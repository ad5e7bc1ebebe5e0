"""Answering a query, whatever protocol it came by: the one path from an API key and a batch to labels.

Both predict routes (ours, `POST /v1/models/{name}/predict`, and the Open Inference Protocol's
`POST /v2/models/{name}/infer`) call `answer`. It authenticates the key, finds the model, has the route read
and validate its body, claims the Idempotency-Key, charges the whole batch atomically, runs the model
(gathered with concurrent requests by the dynamic batcher), keeps the answer for retries, and records the
metrics. What differs between the protocols, the body and the response, stays in the routes.

`answer` is the single place where a client's query is answered: it holds the client id, the model name,
the input batch and the labels together (see the comment there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from redis.exceptions import RedisError

from bbrange.oracle.accounts.auth import authenticate
from bbrange.oracle.accounts.budgets import ChargeResult, ChargeStatus
from bbrange.oracle.accounts.ledger import Ledger
from bbrange.oracle.detection.detector import Detector
from bbrange.oracle.query_metrics import OracleMetrics
from bbrange.oracle.serving.predictor import Predictor, ServedModel
from bbrange.oracle.serving.replays import IDEMPOTENCY_KEY, Claim, ClaimStatus, ReplayStore, request_digest
from bbrange.oracle.settings import OracleSettings
from bbrange.shared.http_errors import ApiError
from bbrange.shared.wire import decode_npy, encode_npy

log = logging.getLogger(__name__)

# The refusal reasons the metrics distinguish; every other refusal before the charge is bad input.
_REFUSAL_REASONS = {"revoked", "unauthorized", "unknown_model", "body_too_large", "request_in_progress",
                    "too_many_auth_failures", "suspected_extraction"}


@dataclass(frozen=True)
class Services:
    """What answering needs from the running oracle (the app's state)."""

    settings: OracleSettings
    metrics: OracleMetrics
    ledger: Ledger
    replays: ReplayStore
    predictor: Predictor
    detector: Detector


@dataclass(frozen=True)
class Batch:
    """A request's inputs, read and validated by its route: float32 (batch, C, H, W) in [0, 1], and the request as
    sent (model, protocol, body), which its Idempotency-Key is bound to."""

    x: np.ndarray
    sent: tuple[str, str, bytes]

    def digest(self) -> str:
        """Hashed only for a request with an Idempotency-Key: a large body costs a fraction of a millisecond."""
        return request_digest(*self.sent)


@dataclass(frozen=True)
class Answer:
    client_id: str
    labels: np.ndarray
    remaining: int
    replayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # the extraction detector's, for the response


# Reads the body of the request for this model; raises ApiError for a body it refuses.
ReadBatch = Callable[[ServedModel], Awaitable[Batch]]


async def answer(services: Services, *, model: str, authorization: str | None, idempotency_key: str | None,
                 read: ReadBatch, encoding: str, source: str) -> Answer:
    """Label a batch for the client behind `authorization`. Every input is one query: the whole batch is
    charged and answered, or nothing is. Refusals are raised as ApiError (counted in the metrics). `source` is
    the caller's address, whose unknown keys are throttled."""
    started = time.perf_counter()
    metrics, ledger, replays, predictor = services.metrics, services.ledger, services.replays, services.predictor
    try:
        # Authenticated here, so that its refusals are counted per model like the others, and its Redis
        # round trips are part of request_seconds.
        client_id = await authenticate(ledger.clients, authorization, source, services.settings.auth_failures_per_minute,
                                       charge_follows=True)
        served = predictor.models.get(model)
        if served is None:
            raise ApiError(404, "unknown_model", f"no model named {model!r}; GET /v1/models lists them",
                           {"models": sorted(predictor.models)})
        detection_headers = await services.detector.admit(client_id, model)  # 403 when the client is blocked
        with predictor.arriving(model):
            batch = await read(served)
            x = batch.x
            n = int(x.shape[0])
            if idempotency_key is not None:
                # The claim of the key and the charge of the batch are one atomic step.
                claim = await _claim_once(replays, ledger, client_id, idempotency_key, batch.digest(), n)
                if claim.status is ClaimStatus.ANSWERED:
                    metrics.replayed_inputs.labels(client=client_id, model=model).inc(n)
                    client = await ledger.clients.get(client_id)
                    return Answer(client_id, decode_npy(claim.labels_npy), client.remaining if client else 0,
                                  replayed=True, headers=detection_headers)
                assert claim.charge is not None
                charge = claim.charge
            else:
                charge = await ledger.budgets.charge(client_id, n)
    except ApiError as e:
        reason = e.code if e.code in _REFUSAL_REASONS else "bad_input"
        metrics.refusals.labels(reason=reason, model=model if model in predictor.models else "").inc()
        raise

    if charge.status is not ChargeStatus.CHARGED:  # nothing was charged, nor claimed
        refusal = _charge_refused(charge, n)
        metrics.refusals.labels(reason=refusal.code, model=model).inc()
        raise refusal

    try:
        labels = await predictor.predict(model, x)
    except Exception:
        # The charge bought nothing: give it back before reporting the failure.
        await ledger.budgets.refund(client_id, n)
        if idempotency_key is not None:
            await replays.release(client_id, idempotency_key)
        metrics.refusals.labels(reason="internal_error", model=model).inc()
        raise
    # Here the query is answered: client_id asked `model` about the inputs x and is told `labels`. The
    # extraction detector watches the stream of queries here, and only here (its update runs off this path).
    services.detector.observe(client_id, model, x, labels)
    if idempotency_key is not None:
        try:
            await replays.answered(client_id, idempotency_key, encode_npy(labels))
        except RedisError as e:
            # The batch is charged and answered: deliver it. A retry of this key is refused (409) until it expires.
            log.warning("could not keep the answer of idempotency key %s: %s", idempotency_key, e)

    metrics.inputs_answered.labels(client=client_id, model=model).inc(n)
    metrics.batch_size.labels(model=model).observe(n)
    metrics.request_seconds.labels(model=model, encoding=encoding).observe(time.perf_counter() - started)
    return Answer(client_id, labels, charge.remaining, headers=detection_headers)


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


async def _claim_once(replays: ReplayStore, ledger: Ledger, client_id: str, key: str, digest: str,
                      n: int) -> Claim:
    """Claim an idempotency key for this request and charge its batch, in one step: ANSWERED with the stored
    answer when it was answered before, CLAIMED or TAKEN_OVER (from a process that died after charging it) when
    this request must answer it, NOT_CHARGED with the reason of the refusal."""
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiError(422, "bad_idempotency_key", "Idempotency-Key must be 1 to 128 characters of "
                                                   "A-Z a-z 0-9 . _ : -")
    claim = await replays.claim_and_charge(ledger.keys.client(client_id), client_id, key, digest, n)
    if claim.status is ClaimStatus.KEY_REUSED:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key came before with another request "
                                                      "(model, content type or body); send a new key per batch")
    if claim.status is ClaimStatus.IN_PROGRESS:
        raise ApiError(409, "request_in_progress", "a request with this Idempotency-Key is still being "
                                                   "answered; retry shortly", headers={"Retry-After": "1"})
    return claim
