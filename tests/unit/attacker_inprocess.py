"""The attacker API in-process: FastAPI's TestClient over `create_app`, its services (`dependencies.services`)
overridden by ones on an in-memory Redis (fakeredis), so a route's logic is tested without a process, a socket
or a redis-server. The real-process tests (tests/attacker) prove the wiring."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import httpx
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from bbrange.attacker.campaigns.api.app import create_app
from bbrange.attacker.campaigns.api.dependencies import AttackerServices, services
from bbrange.attacker.campaigns.campaign_metrics import exposition_registry
from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.spec.allowlist import OracleAllowlist
from bbrange.attacker.campaigns.storage.campaign_store import CampaignStore
from bbrange.attacker.campaigns.storage.job_queue import queue_for
from bbrange.attacker.campaigns.storage.samples import SampleStore
from bbrange.attacker.campaigns.storage.sealing import KeySealer
from bbrange.attacker.campaigns.storage.users import UserStore
from tests.specs import DEFAULT_ORACLE

ADMIN = "in-process-admin"


def in_memory_services(settings: AttackerSettings, server: fakeredis.FakeServer) -> AttackerServices:
    """What `AttackerServices.connect` builds, on fakeredis instead of a Redis at settings.redis_url."""
    connection = fakeredis.FakeRedis(server=server)
    store = CampaignStore(connection, settings.redis_prefix)
    return AttackerServices(settings, connection, store, UserStore(connection, settings.redis_prefix),
                            SampleStore(settings.data_dir), OracleAllowlist(settings.oracle_allowlist),
                            KeySealer(settings.secret_key), queue_for(connection, settings), exposition_registry(store))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class InProcessApi:
    """The API as one user (the token `client` sends), its admin (`admin`), and the services behind both."""

    client: TestClient
    svc: AttackerServices
    server: fakeredis.FakeServer
    token: str = ""

    @property
    def settings(self) -> AttackerSettings:
        return self.svc.settings

    def create_user(self, name: str) -> tuple[str, str]:
        created = self.client.post("/users", json={"name": name}, headers=auth(ADMIN)).raise_for_status().json()
        return created["user"]["id"], created["token"]

    def submit(self, spec: dict[str, Any], token: str | None = None) -> httpx.Response:
        return self.client.post("/attacks", json=spec, headers=auth(self.token if token is None else token))

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**auth(self.token if token is None else token), **kw.pop("headers", {})}
        return self.client.get(path, headers=headers, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**auth(self.token if token is None else token), **kw.pop("headers", {})}
        return self.client.post(path, headers=headers, **kw)

    def cancel(self, cid: str) -> None:
        self.post(f"/attacks/{cid}/cancel").raise_for_status()

    def total(self) -> int:
        total: int = self.get("/attacks").raise_for_status().json()["total"]
        return total


def start_inprocess_api(data_dir: Path, **overrides: Any) -> InProcessApi:
    """A TestClient of a fresh app on a fresh in-memory Redis, with one user; settings as given in overrides.

    The app's lifespan (the reaper of lost campaigns) is not entered: requests need none of it."""
    fields: dict[str, Any] = {
        "redis_url": "redis://127.0.0.1:1/0",  # never connected to: the services are overridden
        "redis_prefix": f"t{uuid.uuid4().hex[:8]}", "queue_name": f"q{uuid.uuid4().hex[:8]}", "data_dir": data_dir,
        "admin_token": ADMIN, "secret_key": Fernet.generate_key().decode(), "oracle_allowlist": [DEFAULT_ORACLE],
        **overrides}
    settings = AttackerSettings(**fields)
    server = fakeredis.FakeServer()
    svc = in_memory_services(settings, server)
    app = create_app(settings)
    app.dependency_overrides[services] = lambda: svc
    api = InProcessApi(TestClient(app, raise_server_exceptions=False), svc, server)
    api.token = api.create_user("tests")[1]
    return api
