"""Admin API: import an ONNX model into the running oracle (and its model directory). Guarded like the rest of
the admin API by BBRANGE_ADMIN_TOKEN; the file is the request body, capped at BBRANGE_MAX_MODEL_BYTES."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from bbrange.oracle.api.dependencies import PredictorDep, SettingsDep, require_admin
from bbrange.oracle.api.request_body import read_capped_body
from bbrange.oracle.models.onnx_import import NAME_PATTERN, ImportRefused, ImportSpec, import_onnx, preprocessing_of
from bbrange.shared.http_errors import ApiError, error_responses
from bbrange.shared.model_card import card_path

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses=error_responses(401, 403, 409, 413, 422, 503))

_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                 "description": "The .onnx file, self-contained (no external data)"}}}}

CommaList = Annotated[str | None, Query(description="Comma-separated values")]


@router.post("/models", status_code=201, openapi_extra=_BODY)
async def import_model(
    request: Request, settings: SettingsDep, predictor: PredictorDep,
    name: Annotated[str, Query(pattern=NAME_PATTERN)],
    dataset: Literal["mnist", "gtsrb", "custom"],
    input_shape: CommaList = None, class_names: CommaList = None, value_range: CommaList = None,
    channel_order: Literal["rgb", "bgr"] = "rgb", mean: CommaList = None, std: CommaList = None,
    layout: Literal["nchw", "nhwc"] = "nchw",
) -> dict[str, Any]:
    """Import an ONNX classifier and serve it at once: checked against the declared input (refused with what
    differs), accuracy measured on the dataset's test set, card and file written to the model directory."""
    if name in predictor.models or card_path(settings.model_dir, name).exists():
        raise ApiError(409, "model_exists", f"a model named {name!r} exists; choose another name")
    data = await read_capped_body(request, settings.max_model_bytes)
    try:
        shape = tuple(int(v) for v in input_shape.split(",")) if input_shape else None
        spec = ImportSpec(name=name, dataset=dataset, input_shape=shape,
                          class_names=class_names.split(",") if class_names else None,
                          preprocessing=preprocessing_of(value_range, channel_order, mean, std, layout))
        card = await run_in_threadpool(import_onnx, data, spec, settings.model_dir, source=f"{name}.onnx",
                                       download=False, device=predictor.device)
    except (ImportRefused, ValidationError, ValueError) as e:
        message = str(e.errors()[0]["msg"]) if isinstance(e, ValidationError) else str(e)
        raise ApiError(422, "import_refused", message) from None
    await run_in_threadpool(predictor.add, card_path(settings.model_dir, card.name))
    log.info("imported %s (%d bytes, sha256 %s)", card.name, len(data), card.weights_sha256[:16])
    return {"model": card.model_dump(mode="json")}
