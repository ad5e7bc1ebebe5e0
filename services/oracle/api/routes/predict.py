"""POST /v1/models/{name}/predict: label a batch, charged to the client's budget as a whole or not at all."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Header, Request, Response

from bbrange.oracle.api.dependencies import AuthorizationHeader, ServicesDep, source_address
from bbrange.oracle.api.request_body import PREDICT_BODY, body_limit, decode_body, read_capped_body
from bbrange.oracle.serving.answering import Batch, answer
from bbrange.oracle.serving.predictor import ServedModel
from bbrange.shared.http_errors import ApiError, error_responses
from bbrange.shared.schemas import PredictResponse
from bbrange.shared.wire import (
    JSON_MEDIA_TYPE,
    NPY_MEDIA_TYPE,
    WireFormatError,
    check_shape,
    encode_npy,
    to_unit_interval,
)

router = APIRouter(prefix="/v1", tags=["predict"])

_WIRE_STATUS = {"malformed_npy": 400, "malformed_json": 400}  # the rest are well-formed but unacceptable: 422

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
    name: str, request: Request, services: ServicesDep,
    authorization: AuthorizationHeader = None,
    content_type: Annotated[str, Header()] = "",
    accept: Annotated[str, Header()] = JSON_MEDIA_TYPE,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Label a batch. Every input is one query: the whole batch is charged and answered, or nothing is."""
    settings = services.settings

    async def read(served: ServedModel) -> Batch:
        body = await read_capped_body(request, body_limit(content_type, settings.max_body_bytes,
                                                          settings.max_json_body_bytes))
        try:
            raw = await decode_body(body, content_type)
            check_shape(raw, served.card.input_shape, settings.max_batch)
            x = to_unit_interval(raw)
        except WireFormatError as e:
            raise ApiError(_WIRE_STATUS.get(e.code, 422), e.code, e.message) from None
        return Batch(x, (name, content_type, body))

    encoding = "npy" if content_type.startswith(NPY_MEDIA_TYPE) else "json"
    result = await answer(services, model=name, authorization=authorization, idempotency_key=idempotency_key,
                          read=read, encoding=encoding, source=source_address(request))
    return _respond(name, result.labels, result.remaining, accept,
                    {**result.headers, **({"Idempotent-Replayed": "true"} if result.replayed else {})})


def _respond(name: str, labels: np.ndarray, remaining: int, accept: str,
             headers: dict[str, str] | None = None) -> Response:
    headers = {"X-Budget-Remaining": str(remaining), **(headers or {})}
    if NPY_MEDIA_TYPE in accept:
        return Response(encode_npy(labels), media_type=NPY_MEDIA_TYPE, headers=headers)
    payload = PredictResponse(model=name, labels=labels.tolist(), budget_remaining=remaining)
    return Response(payload.model_dump_json(), media_type=JSON_MEDIA_TYPE, headers=headers)
