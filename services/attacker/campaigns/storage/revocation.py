"""What revoking a user does to its campaigns: none still queued ever starts, so none spends the oracle key it
was given. The API cancels them when the admin revokes the user; a worker that picks one up later (submitted
while the revocation was under way) cancels it instead of running it. Either way the record says why
(cancelled, code `user_revoked`). Campaigns already running go on; the admin can cancel them."""

from __future__ import annotations

import logging

import redis

from bbrange.attacker.campaigns.storage.campaign_store import CampaignStore
from bbrange.attacker.campaigns.storage.job_queue import drop_queued_job
from bbrange.attacker.campaigns.storage.records import CampaignError, CampaignRecord, CampaignState, utcnow
from bbrange.attacker.campaigns.storage.samples import SampleStore
from bbrange.attacker.campaigns.storage.users import UserStore

log = logging.getLogger(__name__)

_PAGE = 100


def _cancel_queued(store: CampaignStore, samples: SampleStore, cid: str, uid: str, by: str) -> CampaignRecord | None:
    """queued → cancelled (user_revoked); None if the campaign is not queued (then nothing changes)."""

    def cancel(r: CampaignRecord) -> None:
        r.state = CampaignState.cancelled
        r.cancel_requested = True
        r.finished_at = utcnow()
        r.error = CampaignError(code="user_revoked", message=f"cancelled before it started, {by}: the user who "
                                                             f"submitted it ({uid}) was revoked; no oracle query "
                                                             "was made")

    record = store.update(cid, cancel, only_from={CampaignState.queued}, finish=True)
    if record is not None:
        samples.remove_upload(cid)
        log.info("campaign %s cancelled %s: its user %s was revoked", cid, by, uid)
    return record


def cancel_queued_campaigns(store: CampaignStore, samples: SampleStore, connection: redis.Redis, uid: str
                            ) -> list[str]:
    """Cancel every queued campaign of the user (just revoked) and take their jobs off the queue; their ids."""
    queued: list[str] = []
    offset, total = 0, 1
    while offset < total:
        page, total = store.page(CampaignState.queued, offset, _PAGE, owner=uid)
        queued += [r.id for r in page]
        offset += _PAGE
    cancelled = []
    for cid in dict.fromkeys(queued):  # a submission meanwhile shifts the pages: an id may come twice
        if _cancel_queued(store, samples, cid, uid, "when its user was revoked") is not None:
            drop_queued_job(connection, cid)
            cancelled.append(cid)
    return cancelled


def cancel_if_owner_revoked(store: CampaignStore, users: UserStore, samples: SampleStore, cid: str
                            ) -> CampaignRecord | None:
    """A worker's check before it starts a campaign: cancel it if its user is revoked. The cancelled record, or
    None when the campaign may start (or is not queued any more)."""
    record = store.get(cid)
    if record is None or record.owner is None:
        return None
    user = users.get(record.owner)
    if user is None or not user.revoked:
        return None
    return _cancel_queued(store, samples, cid, user.id, "by the worker that picked it up")
