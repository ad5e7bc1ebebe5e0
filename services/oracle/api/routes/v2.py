"""The Open Inference Protocol (KServe V2) beside our own routes, for clients that speak it (tritonclient,
KServe's clients): health, server and model metadata, and infer.

Infer is answered by the same `answer` as `POST /v1/models/{name}/predict`: the same API keys
(`Authorization: Bearer`), budgets (one input is one query), Idempotency-Key, refusals and metrics. Refusals
are V2 error bodies, `{"error": "<message>", "code": "<our code>"}`, with our status codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from bbrange import __version__
from bbrange.oracle.api.dependencies import AuthorizationHeader, LedgerDep, PredictorDep, ServicesDep, source_address
from bbrange.oracle.api.request_body import json_body_limit, parse_json, read_capped_body
from bbrange.oracle.api.routes.predict import IdempotencyKeyHeader
from bbrange.oracle.api.v2_codec import (
    HEADER_LENGTH,
    infer_response,
    json_part_length,
    model_metadata,
    parse_infer,
)
from bbrange.oracle.query_metrics import OracleMetrics
from bbrange.oracle.serving.answering import Batch, answer
from bbrange.oracle.serving.predictor import Predictor, ServedModel
from bbrange.shared.http_errors import ApiError

log = logging.getLogger(__name__)

_PARSE_IN_THREAD_BYTES = 256 * 1024  # larger binary bodies are decoded off the event loop
# A tensor's description before its binary data is a few hundred bytes: such a request is decoded like a .npy
# body, without waiting for a JSON parser; a larger JSON header is parsed like any JSON body.
_SMALL_JSON_HEADER_BYTES = 64 * 1024


class V2Route(APIRoute):
    """Answers this router's refusals in the protocol's shape instead of ours."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def v2_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as e:
                return JSONResponse({"error": e.message, "code": e.code}, status_code=e.status, headers=e.headers)
            except RequestValidationError as e:
                return JSONResponse({"error": str(e.errors()[:3]), "code": "invalid_request"}, status_code=400)
            except RedisError as e:
                log.warning("redis unavailable: %s", e)
                metrics: OracleMetrics = request.app.state.metrics
                metrics.refusals.labels(reason="redis_unavailable", model="").inc()
                return JSONResponse({"error": "the budget store is unreachable; no query is answered unmetered, "
                                              "retry later", "code": "redis_unavailable"},
                                    status_code=503, headers={"Retry-After": "5"})

        return v2_handler


router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"], route_class=V2Route)


def _served(predictor: Predictor, name: str, version: str | None = None) -> ServedModel:
    served = predictor.models.get(name)
    if served is None:
        raise ApiError(404, "unknown_model", f"no model named {name!r}; served: {', '.join(sorted(predictor.models))}")
    if version not in (None, "", "1"):
        raise ApiError(404, "unknown_version", f"model {name!r} has one version, '1'")
    return served


def _input_name(served: ServedModel) -> str:
    return served.card.onnx.input_name if served.card.onnx is not None else "input"


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "blackbox-range-oracle", "version": __version__, "extensions": ["binary_tensor_data"]}


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(ledger: LedgerDep, predictor: PredictorDep) -> dict[str, bool]:
    await ledger.redis.ping()  # a RedisError is answered 503 by V2Route
    return {"ready": bool(predictor.models)}


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def metadata(name: str, predictor: PredictorDep, version: str | None = None) -> dict[str, Any]:
    served = _served(predictor, name, version)
    platform = "onnxruntime_onnx" if served.card.format == "onnx" else "pytorch_safetensors"
    return model_metadata(name, platform, _input_name(served), served.card.input_shape)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, predictor: PredictorDep, version: str | None = None) -> dict[str, Any]:
    _served(predictor, name, version)
    return {"name": name, "ready": True}


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(
    name: str, request: Request, services: ServicesDep, version: str | None = None,
    authorization: AuthorizationHeader = None,
    inference_header_content_length: Annotated[str | None, Header(alias=HEADER_LENGTH)] = None,
    content_encoding: Annotated[str | None, Header()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Label a batch: one input tensor (batch, C, H, W), FP32 in [0, 1] or UINT8; one INT64 output, `label`."""
    settings = services.settings
    if content_encoding not in (None, "", "identity"):
        raise ApiError(415, "unsupported_media_type", f"Content-Encoding {content_encoding} is not supported; "
                                                      "send the request uncompressed")
    if version is not None:
        _served(services.predictor, name, version)
    parsed: dict[str, Any] = {}
    binary = inference_header_content_length is not None

    async def read(served: ServedModel) -> Batch:
        # The JSON of a request, all of it or the header before binary tensor data, has the JSON cap and parser
        # of /v1's JSON bodies; binary tensor data, like .npy, only the general cap.
        limit = settings.max_body_bytes if binary else json_body_limit(settings.max_body_bytes,
                                                                       settings.max_json_body_bytes)
        body = await read_capped_body(request, limit)
        json_length = json_part_length(inference_header_content_length, len(body), settings.max_json_body_bytes)
        args = (body, json_length, _input_name(served), served.card.input_shape, settings.max_batch)
        if not binary or json_length > _SMALL_JSON_HEADER_BYTES:
            got = await parse_json(parse_infer, *args)
        elif len(body) > _PARSE_IN_THREAD_BYTES:
            got = await run_in_threadpool(parse_infer, *args)
        else:
            got = parse_infer(*args)
        parsed["request"] = got
        return Batch(got.x, (name, f"v2;{inference_header_content_length}", body))

    result = await answer(services, model=name, authorization=authorization, idempotency_key=idempotency_key,
                          read=read, encoding="v2-binary" if binary else "v2-json",
                          source=source_address(request))
    got = parsed["request"]
    body, headers = infer_response(name, got.id, result.labels, result.remaining, got.binary_output)
    headers["X-Budget-Remaining"] = str(result.remaining)
    headers.update(result.headers)
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    media_type = headers.pop("Content-Type")
    return Response(body, headers=headers, media_type=media_type)
