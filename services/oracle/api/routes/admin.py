"""Admin API: create clients with budgets, read usage, top up, revoke. Guarded by BBRANGE_ADMIN_TOKEN."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from bbrange.oracle.accounts.keys import Client
from bbrange.oracle.api.bodies import ClientCreate, ClientCreated, ClientList, ClientView, TopUp, client_view
from bbrange.oracle.api.dependencies import LedgerDep, require_admin
from bbrange.shared.http_errors import ApiError, error_responses

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses=error_responses(401, 403, 404, 503))


def _found(client: Client | None, client_id: str) -> ClientView:
    if client is None:
        raise ApiError(404, "unknown_client", f"no client {client_id!r}")
    return client_view(client)


@router.post("/clients", status_code=201, response_model=ClientCreated)
async def create_client(spec: ClientCreate, ledger: LedgerDep) -> ClientCreated:
    client, api_key = await ledger.clients.create(spec.name, spec.budget, spec.rate_per_minute)
    return ClientCreated(client=client_view(client), api_key=api_key)


@router.get("/clients", response_model=ClientList)
async def list_clients(ledger: LedgerDep) -> ClientList:
    return ClientList(clients=[client_view(c) for c in await ledger.clients.list_all()])


@router.get("/clients/{client_id}", response_model=ClientView)
async def get_client(client_id: str, ledger: LedgerDep) -> ClientView:
    return _found(await ledger.clients.get(client_id), client_id)


@router.post("/clients/{client_id}/top-up", response_model=ClientView)
async def top_up(client_id: str, body: TopUp, ledger: LedgerDep) -> ClientView:
    return _found(await ledger.clients.top_up(client_id, body.amount), client_id)


@router.post("/clients/{client_id}/revoke", response_model=ClientView)
async def revoke(client_id: str, ledger: LedgerDep) -> ClientView:
    return _found(await ledger.clients.revoke(client_id), client_id)
