"""What the attacker API's routes need, built once per app in its lifespan and handed to routes as typed
dependencies (`Annotated[..., Depends()]`), so a route can be read, and overridden in a test, alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from prometheus_client import CollectorRegistry
from rq import Queue

from bbrange.attacker.campaigns.allowlist import OracleAllowlist
from bbrange.attacker.campaigns.jobs import queue_for
from bbrange.attacker.campaigns.metrics import exposition_registry
from bbrange.attacker.campaigns.records import CampaignRecord
from bbrange.attacker.campaigns.samples import SampleStore
from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.store import CampaignStore
from bbrange.shared.http_errors import ApiError


@dataclass
class AttackerServices:
    settings: AttackerSettings
    connection: redis.Redis
    store: CampaignStore
    samples: SampleStore
    allowlist: OracleAllowlist
    queue: Queue
    registry: CollectorRegistry

    @classmethod
    def connect(cls, settings: AttackerSettings) -> AttackerServices:
        connection = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        store = CampaignStore(connection, settings.redis_prefix)
        return cls(settings, connection, store, SampleStore(settings.data_dir),
                   OracleAllowlist(settings.oracle_allowlist), queue_for(connection, settings),
                   exposition_registry(store))


def services(request: Request) -> AttackerServices:
    found: AttackerServices = request.app.state.services
    return found


Services = Annotated[AttackerServices, Depends(services)]


def campaign(cid: str, svc: Services) -> CampaignRecord:
    """The campaign named in the path, or 404."""
    record = svc.store.get(cid)
    if record is None:
        raise ApiError(404, "unknown_campaign", f"no campaign {cid!r}")
    return record


Campaign = Annotated[CampaignRecord, Depends(campaign)]
