"""Bodies of the oracle's client and admin endpoints; those the attacker reads too are in bbrange.shared.schemas."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bbrange.oracle.accounts.keys import Client


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
    def of(cls, c: Client) -> ClientView:
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
