"""How an endpoint's refusals are read: which are worth a retry (and after how long), which are final, and
what of an error body may be quoted into a campaign's record."""

from __future__ import annotations

from typing import Any

import httpx

from bbrange.attacker.engine import BudgetExhausted

ERROR_QUOTE_CHARS = 200
# What a 422 says when the batch is too large: ours (`batch_too_large`, "exceeds the limit"), FastAPI apps'
# {"detail": ...}, serving systems' own words. Looked for in the body, which is not quoted for it.
_TOO_LARGE = ("too large", "too many", "too big", "batch size", "max_batch", "batch_too_large", "exceeds the limit")


class OracleBudgetExhausted(BudgetExhausted):
    """The oracle answered 429 budget_exhausted: this key has no budget left for the batch.

    Earlier requests of the same `label` call may have been answered and charged: the call then raises
    `PartiallyAnswered` from this error, which the engine's counter books.
    """

    def __init__(self, remaining: int | None, requested: int) -> None:
        Exception.__init__(
            self, f"the oracle's budget for this API key is exhausted: {requested} inputs asked for, "
                  f"{remaining if remaining is not None else 'unknown'} left"
        )
        self.budget = None
        self.used = None
        self.requested = requested
        self.phase = None
        self.remaining = remaining


class Transient(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BatchTooLarge(Exception):
    pass


def quoted_error(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    """(code, message, details) of an error answer. Only an error in a serving protocol's shape is quoted
    (bbrange `{"error": {"code", "message"}}`, V2 and KServe `{"error": "..."}`); anything else is
    described by its status and size, so that a service that is not an oracle never leaks into a record."""
    status = f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        details: dict[str, Any] = error["details"] if isinstance(error.get("details"), dict) else {}
        return str(error.get("code", "http_error"))[:64], str(error["message"])[:ERROR_QUOTE_CHARS], details
    if isinstance(error, str):
        return "http_error", f"{status}: {error[:ERROR_QUOTE_CHARS]}", {}
    return "http_error", f"{status} ({len(response.content)} bytes of a reply that is not a protocol error, not quoted)", {}


def says_too_large(response: httpx.Response) -> bool:
    """A 413, or a 422 whose body says the batch is too large (in whatever shape the endpoint answers)."""
    if response.status_code == 413:
        return True
    return response.status_code == 422 and any(w in response.text[:4096].lower() for w in _TOO_LARGE)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


