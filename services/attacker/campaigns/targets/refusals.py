"""How an endpoint's refusals are read: which are worth a retry (after how long, how many times), which are
final, and what of an error body may be quoted into a campaign's record."""

from __future__ import annotations

import re
from typing import Any

import httpx
from tenacity import RetryCallState, stop_after_attempt

from bbrange.attacker.engine import BudgetExhausted

ERROR_QUOTE_CHARS = 200
# How serving systems say a batch is too large, on a 400 or a 422: ours (`batch_too_large`, "exceeds the
# limit"), Triton ("inference request batch-size must be <= 64"), TF Serving ("Task size 2000 is larger than
# maximum input batch size 1000"), FastAPI apps' {"detail": ...} in their own words. Looked for in the body,
# which is not quoted for it.
_TOO_LARGE = re.compile(
    r"too large|too many|too big|batch[-_ ]size|max_batch|max(imum)? (input )?batch|batch_too_large"
    r"|exceeds the limit|larger than max",
    re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clip(text: str, limit: int = ERROR_QUOTE_CHARS) -> str:
    """Foreign text as a record may quote it: on one line, at most `limit` characters."""
    one_line = _CONTROL.sub(" ", text)
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


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


class StopTransientAfter(stop_after_attempt):
    """Stop after `max_attempts` failures that did not say when to come back (Retry-After)."""

    def __init__(self, max_attempts: int) -> None:
        super().__init__(max_attempts)
        self._failures = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if not (isinstance(exc, Transient) and exc.retry_after_s is not None):
            self._failures += 1
        return self._failures >= self.max_attempt_number


class BatchTooLarge(Exception):
    pass


def quoted_error(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    """(code, message, details) of an error answer. The common JSON error shapes are quoted, bounded: bbrange
    `{"error": {"code", "message"}}`, V2 and KServe `{"error": "..."}`, RFC 7807 problem details (`title`,
    `detail`), FastAPI's `{"detail": ...}` (a text or validation errors), `{"message": ...}` and
    `{"errors": [{"message"}]}`. Anything else (a proxy's HTML page, text) is described by its status and size
    only, so that what is not an API's error answer never leaks into a record."""
    status = f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        details: dict[str, Any] = error["details"] if isinstance(error.get("details"), dict) else {}
        return clip(str(error.get("code", "http_error")), 64), clip(error["message"]), details
    said = _said(body) if isinstance(body, dict) else None
    if said:
        return "http_error", f"{status}: {clip(said)}", {}
    return "http_error", f"{status} ({len(response.content)} bytes of a reply that is not a JSON error, not quoted)", {}


def _said(body: dict[str, Any]) -> str | None:
    """What a JSON error body says, in the common shapes; None when it has none of them."""
    if isinstance(body.get("error"), str):
        return str(body["error"])
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}"
                           for d in detail[:5] if isinstance(d, dict))
    title = str(body["title"]) if isinstance(body.get("title"), str) else None
    if isinstance(detail, str) and detail:
        return f"{title}: {detail}" if title else detail
    if title:
        return title
    if isinstance(body.get("message"), str):
        return str(body["message"])
    errors = body.get("errors")
    if isinstance(errors, list):
        messages = [str(e["message"]) for e in errors[:5] if isinstance(e, dict) and isinstance(e.get("message"), str)]
        return "; ".join(messages) or None
    return None


def says_too_large(response: httpx.Response) -> bool:
    """A 413, or a 400 or 422 whose body says the batch is too large (in whatever shape the endpoint answers)."""
    if response.status_code == 413:
        return True
    return response.status_code in (400, 422) and _TOO_LARGE.search(response.text[:4096]) is not None


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


