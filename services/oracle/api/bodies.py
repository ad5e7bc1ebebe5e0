"""Bodies of the oracle's client and admin endpoints. The admin API's own are in bbrange.shared.admin_schemas
(its client is used from the attacker's side); here is how the oracle fills a ClientView from its ledger."""

from __future__ import annotations

from bbrange.oracle.accounts.keys import Client
from bbrange.shared.admin_schemas import ClientCreate, ClientCreated, ClientList, ClientView, TopUp

__all__ = ["ClientCreate", "ClientCreated", "ClientList", "ClientView", "TopUp", "client_view"]


def client_view(c: Client) -> ClientView:
    return ClientView(client_id=c.client_id, name=c.name, budget=c.budget, used=c.used, remaining=c.remaining,
                      rate_per_minute=c.rate_per_minute, revoked=c.revoked, created_at=c.created_at)
