"""Admin API: create clients with budgets, read usage, top up, revoke. Guarded by BBRANGE_ADMIN_TOKEN."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field

from bbrange.oracle.ledger import Client, Ledger
from bbrange.shared.http_errors import ApiError
from bbrange.shared.schemas import ErrorBody


class ClientView(BaseModel):
    client_id: str
    name: str
    budget: int = Field(description="Total inputs this client may have labelled")
    used: int
    remaining: int
    rate_per_minute: int | None
    revoked: bool
    created_at: str

    @classmethod
    def of(cls, c: Client) -> "ClientView":
        return cls(client_id=c.client_id, name=c.name, budget=c.budget, used=c.used, remaining=c.remaining,
                   rate_per_minute=c.rate_per_minute, revoked=c.revoked, created_at=c.created_at)


class ClientCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid",
                              json_schema_extra={"examples": [{"name": "red-team", "budget": 1000}]})
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@ -]+$")
    budget: int = Field(ge=0, le=10**12, description="Total inputs the client may have labelled")
    rate_per_minute: int | None = Field(None, gt=0, description="Most inputs per minute (none: unlimited)")


class ClientCreated(BaseModel):
    client: ClientView
    api_key: str = Field(description="Shown once; only its sha256 is stored")


class TopUp(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"amount": 500}]})
    amount: int = Field(gt=0, le=10**12)


class ClientList(BaseModel):
    clients: list[ClientView]


def _ledger(request: Request) -> Ledger:
    return request.app.state.ledger


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    token = request.app.state.settings.admin_token
    if token is None:
        raise ApiError(403, "admin_disabled", "the admin API is disabled: set BBRANGE_ADMIN_TOKEN on the oracle")
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(presented.encode(), token.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "admin endpoints need 'Authorization: Bearer <admin token>'",
                       headers={"WWW-Authenticate": "Bearer"})


_errors = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 503: {"model": ErrorBody}}
router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=_errors)
LedgerDep = Annotated[Ledger, Depends(_ledger)]


def _found(client: Client | None, client_id: str) -> ClientView:
    if client is None:
        raise ApiError(404, "unknown_client", f"no client {client_id!r}")
    return ClientView.of(client)


@router.post("/clients", status_code=201, response_model=ClientCreated)
async def create_client(spec: ClientCreate, ledger: LedgerDep) -> ClientCreated:
    client, api_key = await ledger.create_client(spec.name, spec.budget, spec.rate_per_minute)
    return ClientCreated(client=ClientView.of(client), api_key=api_key)


@router.get("/clients", response_model=ClientList)
async def list_clients(ledger: LedgerDep) -> ClientList:
    return ClientList(clients=[ClientView.of(c) for c in await ledger.list_clients()])


@router.get("/clients/{client_id}", response_model=ClientView)
async def get_client(client_id: str, ledger: LedgerDep) -> ClientView:
    return _found(await ledger.get_client(client_id), client_id)


@router.post("/clients/{client_id}/top-up", response_model=ClientView)
async def top_up(client_id: str, body: TopUp, ledger: LedgerDep) -> ClientView:
    return _found(await ledger.top_up(client_id, body.amount), client_id)


@router.post("/clients/{client_id}/revoke", response_model=ClientView)
async def revoke(client_id: str, ledger: LedgerDep) -> ClientView:
    return _found(await ledger.revoke(client_id), client_id)
