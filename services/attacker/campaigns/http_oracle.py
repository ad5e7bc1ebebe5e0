"""The remote oracle behind the engine's `LabelOracle` contract: labels over HTTP, nothing else.

Binary bodies (float32 .npy in, int64 .npy out), one pooled keep-alive connection set per campaign,
batches no larger than the oracle accepts, timeouts, and retries with exponential backoff on transient
failures (connection errors, timeouts, 502/503/504, 409 `request_in_progress`); every batch carries an
`Idempotency-Key`, so a retry after a lost response is answered from the oracle's first answer and
not charged twice. A 429 `rate_limited` waits for Retry-After and
tries again; a 429 `budget_exhausted` is final and surfaces as the engine's `BudgetExhausted`, so that
substitute training stops where the engine stops for a local budget, keeping what it has.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter

from bbrange.attacker.campaigns.errors import OracleError, OracleUnavailable
from bbrange.attacker.engine import BudgetExhausted, PartiallyAnswered
from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({502, 503, 504})
FLAG_HEADER = "X-Extraction-Flagged"  # the oracle's extraction detector flagged this key ("prada; queries=N")


class _Transient(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _RateLimited(_Transient):
    pass


class OracleBudgetExhausted(BudgetExhausted):
    """The oracle answered 429 budget_exhausted: this key has no budget left for the batch."""

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


@dataclass(frozen=True)
class RemoteModel:
    name: str
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int


def _error_of(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    try:
        error = response.json().get("error", {})
        return error.get("code", "http_error"), error.get("message", response.text[:200]), error.get("details", {})
    except ValueError:
        return "http_error", f"HTTP {response.status_code}: {response.text[:200]}", {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class HttpLabelOracle:
    """A `LabelOracle` over the oracle's HTTP API. Counts every input it sends and every input answered."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        max_batch: int = 1024,
        timeout_s: float = 30.0,
        max_attempts: int = 6,
        max_wait_s: float = 600.0,
        interrupt: Callable[[], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.max_batch = max_batch
        self.inputs_sent = 0  # retries and refused requests included
        self.requests_retried = 0
        self.inputs_answered = 0
        self.flag: str | None = None  # the oracle's FLAG_HEADER, when first seen (on an answer or a 403)
        self.flagged_after: int | None = None  # inputs answered to this client before it was first seen
        self._interrupt = interrupt or (lambda: None)
        self._max_attempts = max_attempts
        self._max_wait_s = max_wait_s
        # Redirects are not followed: the allowlist was checked for this origin, not for wherever it points.
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout_s, follow_redirects=False, transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "bbrange-attacker"},
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )
        self._remote: RemoteModel | None = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpLabelOracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ LabelOracle

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.describe().input_shape

    @property
    def num_classes(self) -> int:
        return self.describe().num_classes

    def describe(self) -> RemoteModel:
        """The target model's shape and classes, from GET /v1/models (once)."""
        if self._remote is None:
            body = self._call(lambda: self._client.get("/v1/models")).json()
            models = {m["name"]: m for m in body.get("models", [])}
            if self.model not in models:
                raise OracleError("unknown_model", f"the oracle serves no model {self.model!r}; it serves: "
                                  f"{', '.join(sorted(models)) or 'nothing'}")
            m = models[self.model]
            self._remote = RemoteModel(m["name"], m.get("dataset", ""), tuple(m["input_shape"]), int(m["num_classes"]))
        return self._remote

    def label(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out: list[np.ndarray] = []
        answered = 0
        for start in range(0, len(x), self.max_batch):
            batch = x[start : start + self.max_batch]
            try:
                try:
                    labels = self._predict(batch)
                except OracleBudgetExhausted as e:
                    raise OracleBudgetExhausted(e.remaining, len(batch)) from None
            except Exception as e:
                # The oracle charged the batches it answered before this one: the counter must book them.
                if answered:
                    raise PartiallyAnswered(answered) from e
                raise
            answered += len(batch)
            out.append(labels)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ requests

    def _predict(self, batch: np.ndarray) -> np.ndarray:
        body = encode_npy(batch)
        path = f"/v1/models/{self.model}/predict"
        # One key per batch, sent again by every retry: a retry of a request whose response was lost gets
        # the first answer back instead of being charged twice.
        headers = {"Content-Type": NPY_MEDIA_TYPE, "Accept": NPY_MEDIA_TYPE, "Idempotency-Key": uuid.uuid4().hex}

        def send() -> httpx.Response:
            self.inputs_sent += len(batch)
            return self._client.post(path, content=body, headers=headers)

        response = self._call(send)
        self._note_flag(response)
        self.inputs_answered += len(batch)
        labels = decode_npy(response.content).astype(np.int64, copy=False)
        if labels.shape != (len(batch),):
            raise OracleError("bad_response", f"the oracle returned {labels.shape} labels for {len(batch)} inputs")
        return labels

    def _call(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        """One logical request: retried on transient failures and rate limits, final otherwise."""

        def attempt() -> httpx.Response:
            self._interrupt()
            try:
                response = send()
            except httpx.TransportError as e:  # connect, read and write errors, timeouts
                raise _Transient(f"{type(e).__name__}: {e}") from e
            if response.status_code < 400:
                return response
            code, message, details = _error_of(response)
            if response.status_code == 429 and code == "budget_exhausted":
                remaining = details.get("remaining", response.headers.get("X-Budget-Remaining"))
                raise OracleBudgetExhausted(int(remaining) if remaining is not None else None, 0)
            if response.status_code == 429:
                raise _RateLimited(f"rate limited: {message}", _retry_after(response) or 1.0)
            self._note_flag(response)
            if response.status_code in TRANSIENT_STATUS or code == "request_in_progress":
                raise _Transient(f"HTTP {response.status_code} {code}: {message}", _retry_after(response))
            raise OracleError(code, f"the oracle refused the request ({response.status_code} {code}): {message}",
                              response.status_code)

        backoff = wait_exponential_jitter(initial=0.5, max=30.0)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Transient) and exc.retry_after_s is not None:
                return min(exc.retry_after_s, self._max_wait_s)
            return backoff(state)

        def before_sleep(state: RetryCallState) -> None:
            self.requests_retried += 1
            exc = state.outcome.exception() if state.outcome else None
            log.warning("oracle request failed (%s); retrying in %.1fs", exc, state.upcoming_sleep)

        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            # Rate limits wait and retry without limit on attempts: only the total wait bounds them.
            stop=stop_after_delay(self._max_wait_s) | _stop_transient_after(self._max_attempts),
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as e:
            raise OracleUnavailable(f"the oracle stayed unavailable: {e}") from e

    def _note_flag(self, response: httpx.Response) -> None:
        value = response.headers.get(FLAG_HEADER)
        if value and self.flag is None:
            self.flag, self.flagged_after = value, self.inputs_answered

    def _sleep(self, seconds: float) -> None:
        """Sleep in short slices so that a cancelled campaign does not sit out a long Retry-After."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._interrupt()
            time.sleep(min(left, 0.25))


class _stop_transient_after(stop_after_attempt):
    """Stop after `max_attempts` failures that were not rate limits."""

    def __init__(self, max_attempts: int) -> None:
        super().__init__(max_attempts)
        self._failures = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if not isinstance(exc, _RateLimited):
            self._failures += 1
        return self._failures >= self.max_attempt_number
