"""Submit, list, follow and cancel campaigns. Every campaign belongs to the user who submitted it: a user
sees and cancels only its own, the admin all of them."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from bbrange.attacker.campaigns.api.dependencies import CallerDep, Campaign, Services
from bbrange.attacker.campaigns.api.responses import CampaignAccepted, CampaignPage
from bbrange.attacker.campaigns.api.submission import decode_uploads, without_upload_data
from bbrange.attacker.campaigns.errors import TargetNotAllowed
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.spec.limits import (
    check_active,
    check_spec_limits,
    check_spec_size,
    initial_set_size,
    keep_within_quota,
    too_many_active,
)
from bbrange.attacker.campaigns.storage.campaign_store import TooManyActive
from bbrange.attacker.campaigns.storage.job_queue import drop_queued_job, enqueue_campaign
from bbrange.attacker.campaigns.storage.records import CampaignRecord, CampaignState, utcnow
from bbrange.attacker.campaigns.storage.sealing import sealed_spec_json
from bbrange.attacker.campaigns.storage.user_data import UserDataError, volume_file
from bbrange.shared.http_errors import ApiError, error_responses

log = logging.getLogger(__name__)

router = APIRouter(prefix="/attacks", tags=["campaigns"])

MAX_OFFSET = 1_000_000


@router.post("", status_code=202, response_model=CampaignAccepted,
             responses=error_responses(400, 401, 403, 413, 422, 429, 503))
def submit(spec: CampaignSpec, response: Response, svc: Services, who: CallerDep) -> CampaignAccepted:
    """Queue a campaign. Answers 202 at once with its id; follow it at the Location header."""
    if who.admin or who.user_id is None:
        raise ApiError(403, "users_only", "campaigns belong to users: submit with a user's token (the admin "
                                          "creates users: POST /users)")
    check_active(svc.store, who.user_id, svc.settings)
    uploads = decode_uploads(spec, svc.settings.max_upload_bytes)
    try:
        svc.allowlist.check(spec.target.oracle_url)
    except TargetNotAllowed as e:
        raise ApiError(403, "target_not_allowed", str(e), {"oracle_url": spec.target.oracle_url}) from None
    for name in spec.files():
        try:
            volume_file(svc.settings.datasets_dir, name)
        except UserDataError as e:
            raise ApiError(422, "invalid_request", str(e), {"file": name}) from None
    check_spec_limits(spec, initial_set_size(spec, None if uploads.x0 is None else len(uploads.x0)), svc.settings)
    stored = without_upload_data(spec, uploads)
    sealed = sealed_spec_json(stored, svc.sealer)
    check_spec_size(sealed, svc.settings)
    cid = uuid.uuid4().hex
    record = CampaignRecord(id=cid, name=spec.name, state=CampaignState.queued, created_at=utcnow(),
                            owner=who.user_id, spec=stored.public())
    try:
        svc.samples.save_uploads(cid, uploads)
        svc.store.create(record, sealed, max_active=svc.settings.max_active_campaigns_per_user)
    except TooManyActive as e:
        svc.samples.remove_upload(cid)
        raise too_many_active(e.active, svc.settings) from None
    except BaseException:
        svc.samples.remove_upload(cid)
        raise
    keep_within_quota(svc.store, svc.samples, who.user_id, svc.settings)
    try:
        enqueue_campaign(svc.queue, cid, svc.settings)
    except Exception:
        # Never leave a campaign that no worker will ever see reading "queued".
        log.exception("could not enqueue campaign %s", cid)
        svc.store.fail(cid, "enqueue_failed", lambda _: "the campaign could not be put on the job queue; submit it "
                                                        "again", {CampaignState.queued})
        svc.samples.remove_upload(cid)
        raise
    location = f"/attacks/{cid}"
    response.headers["Location"] = location
    return CampaignAccepted(id=cid, state=record.state, location=location)


@router.get("", response_model=CampaignPage, responses=error_responses(401, 403, 422, 503))
def list_campaigns(
    svc: Services,
    who: CallerDep,
    state: Annotated[CampaignState | None, Query(description="Only campaigns in this state")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CampaignPage:
    """The caller's campaigns (the admin's: everyone's), newest first."""
    items, total = svc.store.page(state, offset, limit, owner=None if who.admin else who.user_id)
    nxt = offset + limit if offset + limit < total else None
    return CampaignPage(items=items, total=total, offset=offset, limit=limit, next_offset=nxt)


@router.get("/{cid}", response_model=CampaignRecord, responses=error_responses(401, 403, 404, 503))
def get_campaign(record: Campaign) -> CampaignRecord:
    """State, phase, progress, per-epoch metrics, queries by phase, results, and the error if it failed."""
    return record


def _cancel(record: CampaignRecord, svc: Services) -> CampaignRecord:
    if record.state.finished:
        raise ApiError(409, "already_finished", f"campaign {record.id} already {record.state.value}",
                       {"state": record.state.value})
    record = svc.store.request_cancel(record.id) or record
    if record.state is CampaignState.cancelled:
        drop_queued_job(svc.connection, record.id)
        svc.samples.remove_upload(record.id)
    return record


@router.post("/{cid}/cancel", status_code=202, response_model=CampaignRecord,
             responses=error_responses(401, 403, 404, 409, 413, 503))
def cancel_campaign(record: Campaign, svc: Services) -> CampaignRecord:
    """Cancel: a queued campaign at once; a running one at its next oracle request or substitute epoch,
    keeping what it has computed."""
    return _cancel(record, svc)


@router.delete("/{cid}", status_code=202, response_model=CampaignRecord,
               responses=error_responses(401, 403, 404, 409, 503))
def delete_campaign(record: Campaign, svc: Services) -> CampaignRecord:
    """The same as POST /attacks/{id}/cancel (the record and samples are kept)."""
    return _cancel(record, svc)
