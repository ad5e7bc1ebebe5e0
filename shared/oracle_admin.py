"""A typed client of the oracle's admin API: clients (API keys) with budgets, usage, top-ups, revocation,
detection state and policy, ONNX model import. Every refusal raises ServiceError with the oracle's error body."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from bbrange.shared.admin_schemas import (
    ClientCreate,
    ClientCreated,
    ClientList,
    ClientView,
    DetectionPolicy,
    DetectionState,
    TopUp,
)
from bbrange.shared.service_client import bearer, send

SERVICE = "oracle"


class OracleAdmin:
    def __init__(self, url: str, admin_token: str, *, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s, headers=bearer(admin_token), transport=transport)

    def __enter__(self) -> OracleAdmin:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return send(self.http, SERVICE, method, path, **kwargs)

    # ------------------------------------------------------------------------------------ clients and budgets

    def create_client(self, name: str, budget: int, rate_per_minute: int | None = None) -> ClientCreated:
        """A new client and its API key (shown this once)."""
        body = ClientCreate(name=name, budget=budget, rate_per_minute=rate_per_minute)
        return ClientCreated.model_validate(self._call("POST", "/v1/admin/clients", json=body.model_dump()).json())

    def clients(self) -> list[ClientView]:
        return ClientList.model_validate(self._call("GET", "/v1/admin/clients").json()).clients

    def client(self, client_id: str) -> ClientView:
        return ClientView.model_validate(self._call("GET", f"/v1/admin/clients/{client_id}").json())

    def top_up(self, client_id: str, amount: int) -> ClientView:
        body = TopUp(amount=amount).model_dump()
        return ClientView.model_validate(self._call("POST", f"/v1/admin/clients/{client_id}/top-up", json=body).json())

    def revoke(self, client_id: str) -> ClientView:
        return ClientView.model_validate(self._call("POST", f"/v1/admin/clients/{client_id}/revoke").json())

    # ------------------------------------------------------------------------------------ extraction detector

    def detection(self, client_id: str) -> DetectionState:
        return DetectionState.model_validate(self._call("GET", f"/v1/admin/clients/{client_id}/detection").json())

    def set_detection_policy(self, client_id: str, policy: DetectionPolicy | None) -> DetectionState:
        """The client's own policy (None: back to each model's)."""
        r = self._call("PUT", f"/v1/admin/clients/{client_id}/detection/policy", json={"policy": policy})
        return DetectionState.model_validate(r.json())

    def clear_detection(self, client_id: str) -> DetectionState:
        return DetectionState.model_validate(self._call("POST", f"/v1/admin/clients/{client_id}/detection/clear").json())

    # ------------------------------------------------------------------------------------ models

    def import_model(self, onnx: bytes, params: dict[str, str], timeout_s: float = 120.0) -> dict[str, Any]:
        """POST /v1/admin/models: an ONNX file with its name, dataset and shape as query parameters."""
        r = self._call("POST", "/v1/admin/models", params=params, content=onnx, timeout=timeout_s,
                       headers={"Content-Type": "application/octet-stream"})
        imported: dict[str, Any] = r.json()
        return imported
