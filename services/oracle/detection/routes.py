"""Admin API of the detector: a client's detection state, clearing its flag, its own policy."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from bbrange.oracle.api.dependencies import DetectorDep, LedgerDep, PredictorDep, require_admin
from bbrange.oracle.detection.config import DetectorConfig, Policy
from bbrange.oracle.detection.detector import Detector
from bbrange.oracle.detection.prada import stored_size
from bbrange.shared.http_errors import ApiError, error_responses

router = APIRouter(prefix="/v1/admin/clients/{client_id}/detection", tags=["admin", "detection"],
                   dependencies=[Depends(require_admin)], responses=error_responses(401, 403, 404, 503))


class FlagView(BaseModel):
    reason: str = Field(description="The detector that raised it (prada or blacklight)")
    model: str
    queries: int = Field(description="The client's queries of `model` the detector had seen when it raised the flag")
    statistic: float | None = Field(description="The detector's statistic then (prada: Shapiro-Wilk W; blacklight: "
                                                "the most hashes a query shared with an earlier one)")
    flagged_at: str
    linked: list[str] = Field(description="blacklight: the other clients whose queries matched this client's (the "
                                          "keys of an attack split over several)")


class BlacklightView(BaseModel):
    enabled: bool
    queries: int = Field(description="Inputs of this model Blacklight has seen from the client")
    matched: int = Field(description="Of those, queries that shared at least T hashes with an earlier query")
    matched_other_clients: int = Field(description="Of those, matches with another client's query")
    max_shared: int = Field(description="The most hashes one of its queries shared with an earlier query")
    first_match_at: int | None = Field(description="Its query that matched first (1: its first query)")
    linked_clients: list[str] = Field(description="Clients whose queries matched this client's or the reverse")


class ModelDetection(BaseModel):
    model: str
    policy: Policy = Field(description="The policy in force for this client and model")
    config: DetectorConfig
    queries: int = Field(description="Inputs of this model the detector has seen from the client")
    repeats: int = Field(description="Of those, exact repeats of a stored query (skipped)")
    statistic: float | None = Field(description="The last Shapiro-Wilk W (None until enough distances)")
    alarm_at: int | None = Field(description="Queries seen when W first fell below δ")
    distances: int = Field(description="Distances in PRADA's window D")
    stored_points: dict[int, int] = Field(description="Points kept in G_c, per class c")
    max_bytes: int = Field(description="Most bytes this client's PRADA state of this model can take in Redis")
    blacklight: BlacklightView


class DetectionView(BaseModel):
    client_id: str
    enabled: bool
    policy_override: Policy | None = Field(description="The admin's policy for this client; None: each model's")
    flagged: bool
    flag: FlagView | None
    models: list[ModelDetection]


class PolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"policy": "block"}]})
    policy: Policy | None = Field(description="observe, flag or block; null goes back to each model's policy")


async def _view(client_id: str, detector: Detector, ledger: LedgerDep, predictor: PredictorDep) -> DetectionView:
    if await ledger.clients.get(client_id) is None:
        raise ApiError(404, "unknown_client", f"no client {client_id!r}")
    client = await detector.store.client(client_id)
    models = []
    for name, served in sorted(predictor.models.items()):
        config = detector.settings.for_model(name)
        dim = stored_size(tuple(served.card.input_shape), config)
        state = await detector.store.load(client_id, name, dim)
        bl = await detector.blacklight.client(client_id, name)
        models.append(ModelDetection(
            model=name, policy=client.policy or config.policy, config=config, queries=state.queries,
            repeats=state.repeats, statistic=state.statistic, alarm_at=state.alarm_at,
            distances=len(state.distances), stored_points={c: len(g.levels) for c, g in sorted(state.classes.items())},
            max_bytes=config.bytes_per_client(dim, served.card.num_classes),
            blacklight=BlacklightView(enabled=config.blacklight.enabled, queries=bl.queries, matched=bl.matched,
                                      matched_other_clients=bl.matched_other, max_shared=bl.max_shared,
                                      first_match_at=bl.first_match_at, linked_clients=bl.linked),
        ))
    flag = client.flag
    return DetectionView(client_id=client_id, enabled=detector.settings.enabled, policy_override=client.policy,
                         flagged=flag is not None, flag=FlagView(**{**vars(flag), "linked": list(flag.linked)})
                         if flag else None, models=models)


@router.get("", response_model=DetectionView)
async def get_detection(client_id: str, detector: DetectorDep, ledger: LedgerDep,
                        predictor: PredictorDep) -> DetectionView:
    """The client's flag (with the clients Blacklight linked it to), policy and, per model, PRADA's statistic and the
    size of its state, and Blacklight's matches."""
    return await _view(client_id, detector, ledger, predictor)


@router.post("/clear", response_model=DetectionView)
async def clear_detection(client_id: str, detector: DetectorDep, ledger: LedgerDep,
                          predictor: PredictorDep) -> DetectionView:
    """Clear the flag and forget the client's queries: the detector starts again from nothing."""
    if await ledger.clients.get(client_id) is None:
        raise ApiError(404, "unknown_client", f"no client {client_id!r}")
    await detector.clear(client_id)
    return await _view(client_id, detector, ledger, predictor)


@router.put("/policy", response_model=DetectionView)
async def set_policy(client_id: str, body: PolicyUpdate, detector: DetectorDep, ledger: LedgerDep,
                     predictor: PredictorDep) -> DetectionView:
    """This client's own policy, over its models' (null removes it)."""
    if await ledger.clients.get(client_id) is None:
        raise ApiError(404, "unknown_client", f"no client {client_id!r}")
    await detector.set_policy(client_id, body.policy)
    return await _view(client_id, detector, ledger, predictor)
