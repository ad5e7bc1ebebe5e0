"""What the typed clients of both services share: one exception for every refusal, carrying the service's
own error JSON ({"error": {"code", "message", "details"}}, see http_errors.py), and one way to send a request."""

from __future__ import annotations

from typing import Any

import httpx

from bbrange.shared.schemas import ErrorBody, ErrorDetail


class ServiceError(Exception):
    """A service refused a request (status >= 400) or could not be reached (status 0, code unreachable)."""

    def __init__(self, service: str, status: int, error: ErrorDetail) -> None:
        super().__init__(f"{service}: {status} {error.code}: {error.message}")
        self.service = service
        self.status = status
        self.error = error

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def message(self) -> str:
        return self.error.message


def _error_of(response: httpx.Response) -> ErrorDetail:
    try:
        return ErrorBody.model_validate(response.json()).error
    except ValueError:  # not JSON, or JSON in another shape (a proxy's page, a crash): keep its start
        return ErrorDetail(code="http_error", message=response.text[:500])


def send(http: httpx.Client, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request; its response if accepted, else ServiceError with the service's error body."""
    try:
        response = http.request(method, path, **kwargs)
    except httpx.HTTPError as e:
        raise ServiceError(service, 0, ErrorDetail(code="unreachable", message=f"{http.base_url}: {e}")) from e
    if response.is_error:
        raise ServiceError(service, response.status_code, _error_of(response))
    return response


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a token ("" sends none)."""
    return {"Authorization": f"Bearer {token}"} if token else {}
