"""Bodies of the oracle's admin API. They live here, not in bbrange.oracle, because the admin client
(oracle_admin.py) is used from the attacker's side too (the local range, the demo, the benchmarks, the smoke
run), which may never import the oracle."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ClientView(BaseModel):
    client_id: str
    name: str
    budget: int = Field(description="Total inputs this client may have labelled")
    used: int
    remaining: int
    rate_per_minute: int | None
    revoked: bool
    created_at: str


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


DetectionPolicy = Literal["observe", "flag", "block"]


class DetectionState(BaseModel):
    """The oracle's DetectionView (bbrange.oracle.detection.routes) as a client reads it: the top-level fields
    typed, each model's detector state left as the oracle sends it (tests/oracle/test_detection_http.py holds
    the two equal)."""

    client_id: str
    enabled: bool
    policy_override: DetectionPolicy | None
    flagged: bool
    flag: dict[str, Any] | None
    models: list[dict[str, Any]]
