"""What a client may ask about before predicting: the served models, and its own budget."""

from __future__ import annotations

from fastapi import APIRouter

from bbrange.oracle.api.bodies import ClientView, client_view
from bbrange.oracle.api.dependencies import ClientIdDep, LedgerDep, PredictorDep
from bbrange.shared.http_errors import ApiError, error_responses
from bbrange.shared.schemas import ModelInfo, ModelList

router = APIRouter(prefix="/v1", tags=["predict"])


@router.get("/models", response_model=ModelList)
async def list_models(predictor: PredictorDep) -> ModelList:
    return ModelList(models=[
        ModelInfo(name=m.card.name, dataset=m.card.dataset, input_shape=m.card.input_shape,
                  num_classes=m.card.num_classes, class_names=m.card.class_names)
        for m in predictor.models.values()
    ])


@router.get("/usage", response_model=ClientView, responses=error_responses(401, 403, 503))
async def usage(client_id: ClientIdDep, ledger: LedgerDep) -> ClientView:
    client = await ledger.clients.get(client_id)
    if client is None:
        raise ApiError(401, "unauthorized", "unknown API key")
    return client_view(client)
