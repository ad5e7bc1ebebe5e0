"""What the attacker API's routes need, built once per app in its lifespan and handed to routes as typed
dependencies (`Annotated[..., Depends()]`), so a route can be read, and overridden in a test, alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Header, Request
from prometheus_client import CollectorRegistry
from rq import Queue

from bbrange.attacker.campaigns.api.auth import Caller, identify
from bbrange.attacker.campaigns.campaign_metrics import exposition_registry
from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.spec.allowlist import OracleAllowlist
from bbrange.attacker.campaigns.storage.campaign_store import CampaignStore
from bbrange.attacker.campaigns.storage.connections import connect
from bbrange.attacker.campaigns.storage.job_queue import queue_for
from bbrange.attacker.campaigns.storage.records import CampaignRecord
from bbrange.attacker.campaigns.storage.samples import SampleStore
from bbrange.attacker.campaigns.storage.sealing import KeySealer
from bbrange.attacker.campaigns.storage.users import UserStore
from bbrange.shared.http_errors import ApiError


@dataclass
class AttackerServices:
    settings: AttackerSettings
    connection: redis.Redis
    store: CampaignStore
    users: UserStore
    samples: SampleStore
    allowlist: OracleAllowlist
    sealer: KeySealer
    queue: Queue
    registry: CollectorRegistry

    @classmethod
    def connect(cls, settings: AttackerSettings) -> AttackerServices:
        # Requests fail fast (503) during an outage; a connection a Redis restart broke is retried at once.
        connection = connect(settings.redis_url, retry_s=0.5, socket_timeout_s=5)
        store = CampaignStore(connection, settings.redis_prefix)
        return cls(settings, connection, store, UserStore(connection, settings.redis_prefix),
                   SampleStore(settings.data_dir), OracleAllowlist(settings.oracle_allowlist),
                   KeySealer(settings.secret_key), queue_for(connection, settings), exposition_registry(store))


def services(request: Request) -> AttackerServices:
    found: AttackerServices = request.app.state.services
    return found


Services = Annotated[AttackerServices, Depends(services)]


def caller(svc: Services, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """Who is calling: the admin or a user (401 without a valid token, 403 if revoked)."""
    return identify(svc.users, svc.settings.admin_token, authorization)


CallerDep = Annotated[Caller, Depends(caller)]


def admin(who: CallerDep) -> Caller:
    if not who.admin:
        raise ApiError(403, "admin_only", "this needs the attacker's admin token (BBRANGE_ATTACK_ADMIN_TOKEN)")
    return who


AdminDep = Annotated[Caller, Depends(admin)]


def campaign(cid: str, svc: Services, who: CallerDep) -> CampaignRecord:
    """The campaign named in the path if the caller may see it (its owner, or the admin); 404 otherwise, the
    same answer as for a campaign that does not exist, so ids of others' campaigns cannot be probed."""
    record = svc.store.get(cid)
    if record is None or not who.may_see(record):
        raise ApiError(404, "unknown_campaign", f"no campaign {cid[:64]!r}")
    return record


Campaign = Annotated[CampaignRecord, Depends(campaign)]
