"""Submit, list, follow and cancel campaigns."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from bbrange.attacker.campaigns.data_spec import UploadedInitialSet
from bbrange.attacker.campaigns.dependencies import Campaign, Services, campaign
from bbrange.attacker.campaigns.errors import TargetNotAllowed
from bbrange.attacker.campaigns.jobs import drop_queued_job, enqueue_campaign
from bbrange.attacker.campaigns.records import CampaignRecord, CampaignState, utcnow
from bbrange.attacker.campaigns.schemas import CampaignAccepted, CampaignPage
from bbrange.attacker.campaigns.spec import CampaignSpec
from bbrange.attacker.campaigns.target_spec import REVEAL_SECRETS
from bbrange.attacker.campaigns.user_data import UserDataError, volume_file
from bbrange.shared.http_errors import ApiError, error_responses

router = APIRouter(prefix="/attacks", tags=["campaigns"])


@router.post("", status_code=202, response_model=CampaignAccepted, responses=error_responses(403, 422, 503))
def submit(spec: CampaignSpec, response: Response, svc: Services) -> CampaignAccepted:
    """Queue a campaign. Answers 202 at once with its id; follow it at the Location header."""
    try:
        svc.allowlist.check(spec.target.oracle_url)
    except TargetNotAllowed as e:
        raise ApiError(403, "target_not_allowed", str(e), {"oracle_url": spec.target.oracle_url}) from None
    for name in spec.files():
        try:
            volume_file(svc.settings.datasets_dir, name)
        except UserDataError as e:
            raise ApiError(422, "invalid_request", str(e), {"file": name}) from None
    cid = uuid.uuid4().hex
    if isinstance(spec.initial_set, UploadedInitialSet):
        svc.samples.save_upload(cid, spec.initial_set.array(spec.value_range))
    full = spec.model_dump_json(context=REVEAL_SECRETS)
    record = CampaignRecord(id=cid, name=spec.name, state=CampaignState.queued, created_at=utcnow(),
                            spec=spec.public())
    svc.store.create(record, full)
    enqueue_campaign(svc.queue, cid, svc.settings)
    location = f"/attacks/{cid}"
    response.headers["Location"] = location
    return CampaignAccepted(id=cid, state=record.state, location=location)


@router.get("", response_model=CampaignPage, responses=error_responses(422))
def list_campaigns(
    svc: Services,
    state: Annotated[CampaignState | None, Query(description="Only campaigns in this state")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CampaignPage:
    """Campaigns, newest first."""
    svc.store.reap_lost()
    items, total = svc.store.page(state, offset, limit)
    nxt = offset + limit if offset + limit < total else None
    return CampaignPage(items=items, total=total, offset=offset, limit=limit, next_offset=nxt)


@router.get("/{cid}", response_model=CampaignRecord, responses=error_responses(404))
def get_campaign(cid: str, svc: Services) -> CampaignRecord:
    """State, phase, progress, per-epoch metrics, queries by phase, results, and the error if it failed."""
    svc.store.reap_lost()
    return campaign(cid, svc)


def _cancel(record: CampaignRecord, svc: Services) -> CampaignRecord:
    if record.state.finished:
        raise ApiError(409, "already_finished", f"campaign {record.id} already {record.state.value}",
                       {"state": record.state.value})
    record = svc.store.request_cancel(record.id) or record
    if record.state is CampaignState.cancelled:
        drop_queued_job(svc.connection, record.id)
    return record


@router.post("/{cid}/cancel", status_code=202, response_model=CampaignRecord, responses=error_responses(404, 409))
def cancel_campaign(record: Campaign, svc: Services) -> CampaignRecord:
    """Cancel: a queued campaign at once; a running one at its next oracle request or substitute epoch,
    keeping what it has computed."""
    return _cancel(record, svc)


@router.delete("/{cid}", status_code=202, response_model=CampaignRecord, responses=error_responses(404, 409))
def delete_campaign(record: Campaign, svc: Services) -> CampaignRecord:
    """The same as POST /attacks/{id}/cancel (the record and samples are kept)."""
    return _cancel(record, svc)
