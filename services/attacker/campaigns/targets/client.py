"""What every target adapter shares: one HTTP client, auth, pacing, retries and batch sizes.

An adapter is a `LabelOracle` (the engine's contract) over one serving protocol; subclasses only say how
the model is described, how a batch is sent and where the labels are in the answer. Here:

- retries with exponential backoff on transient failures (connection errors, timeouts, 502/503/504, 409
  `request_in_progress`); an answer with `Retry-After` is waited out (it does not use up attempts, only
  the total wait bounds it); every batch carries an `Idempotency-Key`, so a retry after a lost answer is
  not charged twice by an oracle that honours it;
- a batch the endpoint refuses as too large (413, or a 400 or 422 saying so in a serving system's words)
  is split: the batch size becomes half the refused batch's and stays there for the rest of the campaign;
- redirects are never followed (the allowlist admitted this origin, not wherever it points): a redirect
  is an `OracleProtocolError`; an error body is quoted (bounded) only when it has a common JSON error shape;
- a pace in inputs per second, kept whatever the endpoint allows;
- the spec's key, or its several keys taking turns (keyring.py: which key each request goes out with, and
  which refusals take a key out of the rotation rather than stop the campaign);
- whatever the endpoint returns (labels in any nesting or type, scores), only a label per input leaves
  the adapter (labels.py says how they are recognised), mapped to the dataset's classes when the spec gives
  a class map; an answered batch whose answer is then refused is still counted as answered.
"""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from functools import partial
from typing import ClassVar

import httpx
import numpy as np
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay
from tenacity.wait import wait_exponential, wait_random

from bbrange.attacker.campaigns.errors import OracleError, OracleProtocolError, OracleUnavailable
from bbrange.attacker.campaigns.spec.target import Target
from bbrange.attacker.campaigns.targets.encoding import RemoteModel
from bbrange.attacker.campaigns.targets.keyring import BLOCKED, BUDGET_SPENT, key_ring
from bbrange.attacker.campaigns.targets.labels import Expected, read_labels, received
from bbrange.attacker.campaigns.targets.refusals import (
    BatchTooLarge,
    OracleBudgetExhausted,
    StopTransientAfter,
    Transient,
    clip,
    quoted_error,
    retry_after,
    says_too_large,
)
from bbrange.attacker.engine import PartiallyAnswered

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({502, 503, 504})
FLAG_HEADER = "X-Extraction-Flagged"  # our oracle's extraction detector flagged this key ("prada; queries=N")


class TargetClient(ABC):
    """A `LabelOracle` over one serving protocol. Counts every input it sends, retries included."""

    protocol: ClassVar[str]

    def __init__(self, target: Target, *, timeout_s: float = 30.0, max_attempts: int = 6, max_wait_s: float = 600.0,
                 interrupt: Callable[[], None] | None = None, transport: httpx.BaseTransport | None = None,
                 user_agent: str | None = None) -> None:
        self.target = target
        self.model = target.model
        self.batch_size = self._largest_batch(target)
        self.inputs_sent = 0
        self.requests_retried = 0
        self.paced_s = 0.0  # time spent keeping max_queries_per_second
        self.inputs_answered = 0
        self.flag: str | None = None  # the oracle's FLAG_HEADER, when first seen (on an answer or a refusal)
        self.flagged_after: int | None = None  # inputs answered to this client before it was first seen
        self._interrupt = interrupt or (lambda: None)
        self._max_attempts = max_attempts
        self._max_wait_s = max_wait_s
        self._next_send = time.monotonic()
        self.keys = key_ring(target)
        self._client = httpx.Client(
            base_url=target.oracle_url, timeout=timeout_s, follow_redirects=False, transport=transport, auth=self.keys,
            headers={"User-Agent": user_agent} if user_agent else {},  # else httpx's own
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )
        self._remote: RemoteModel | None = None
        self._class_map = None if target.class_map is None else np.asarray(target.class_map, dtype=np.int64)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TargetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ what a protocol says

    def _largest_batch(self, target: Target) -> int:
        """The most inputs one request may carry at first (halved on "too large" answers)."""
        return target.max_batch_size

    @abstractmethod
    def _describe(self) -> RemoteModel:
        """The model's input shape and classes, from the endpoint's metadata or the spec; fails fast on an
        unknown model or a refused key where the protocol has a route to tell."""

    @abstractmethod
    def _send(self, batch: np.ndarray) -> httpx.Response:
        """POST one batch (float32 NCHW in [0, 1]) in the protocol's encoding."""

    @abstractmethod
    def _labels(self, response: httpx.Response, n: int) -> np.ndarray:
        """The endpoint's label for each of the n inputs, from a successful answer (see `_read`)."""

    def _read(self, values: object, n: int, expected: Expected = "either") -> np.ndarray:
        """Labels from the part of an answer that holds them, in the endpoint's classes."""
        return read_labels(values, n, self.describe().num_classes, expected)

    # ------------------------------------------------------------------ LabelOracle

    def describe(self) -> RemoteModel:
        if self._remote is None:
            remote = self._describe()
            if self._class_map is not None and len(self._class_map) != remote.num_classes:
                raise OracleProtocolError(f"class_map has {len(self._class_map)} entries, but model {self.model!r} "
                                          f"answers {remote.num_classes} classes")
            self._remote = remote
        return self._remote

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.describe().input_shape

    @property
    def num_classes(self) -> int:
        """The classes labels are given in: the dataset's when a class map translates the endpoint's."""
        if self._class_map is not None:
            return int(self._class_map.max()) + 1
        return self.describe().num_classes

    def label(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out: list[np.ndarray] = []
        answered = 0
        answered_before = self.inputs_answered
        while answered < len(x):
            batch = x[answered : answered + self.batch_size]
            try:
                labels = self._label_batch(batch)
            except BatchTooLarge as e:
                if len(batch) == 1:
                    raise OracleError("batch_too_large", f"the endpoint refuses even a single input as too large: "
                                      f"{e}") from None
                self.batch_size = len(batch) // 2  # from what was refused: a short last batch is not the maximum
                log.warning("%s refused a batch of %d as too large; sending %d from now on", self.model, len(batch),
                            self.batch_size)
                continue
            except Exception as e:
                # The endpoint answered (and may have charged) every batch before this one, and this one too
                # when it was its answer that could not be read: they must be booked.
                spent = self.inputs_answered - answered_before
                if spent:
                    raise PartiallyAnswered(spent) from e
                raise
            answered += len(batch)
            out.append(labels)
        labels = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
        return labels if self._class_map is None else self._class_map[labels]

    def _label_batch(self, batch: np.ndarray) -> np.ndarray:
        self._pace(len(batch))
        while True:  # once, or again with the next key each time one leaves the rotation
            self.keys.choose()
            idempotency_key = uuid.uuid4().hex  # one per batch and API key, sent again by every retry of it
            try:
                response = self._call(partial(self._send_counted, batch, idempotency_key))
                break
            except OracleBudgetExhausted as e:
                if not self.keys.drop(BUDGET_SPENT, e):
                    raise OracleBudgetExhausted(e.remaining, len(batch)) from None
            except OracleError as e:
                if e.code != BLOCKED or not self.keys.drop(BLOCKED, e):
                    raise
        self.inputs_answered += len(batch)
        self.keys.answered(len(batch))
        try:
            labels = self._labels(response, len(batch))
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise OracleProtocolError(f"the {self.protocol} answer could not be read as labels: "
                                      f"{type(e).__name__}: {clip(str(e))}") from e
        classes = self.describe().num_classes
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise OracleProtocolError(f"the endpoint returned a label outside 0..{classes - 1}: {received(labels)}")
        return labels

    def _send_counted(self, batch: np.ndarray, key: str) -> httpx.Response:
        self.inputs_sent += len(batch)
        self.keys.sent(len(batch))
        self._client.headers["Idempotency-Key"] = key
        try:
            return self._send(batch)
        finally:
            del self._client.headers["Idempotency-Key"]

    def _pace(self, inputs: int) -> None:
        rate = self.target.max_queries_per_second
        if rate is None:
            return
        now = time.monotonic()
        start = max(now, self._next_send)
        self._next_send = start + inputs / rate
        if start > now:
            self.paced_s += start - now
            self._sleep(start - now)

    # ------------------------------------------------------------------ one logical request

    def _get(self, path: str, *, missing_ok: bool = False) -> httpx.Response:
        """GET a metadata route as any request is sent (retried when transient); with missing_ok, a 404 is
        returned for the caller to say what it means."""
        return self._call(lambda: self._client.get(path), accept={404} if missing_ok else set())

    def _call(self, send: Callable[[], httpx.Response], accept: Collection[int] = ()) -> httpx.Response:
        """Retried on transient failures and waited out on Retry-After; final otherwise. Answers whose status
        is in `accept` are returned as they are."""

        def attempt() -> httpx.Response:
            self._interrupt()
            try:
                response = send()
            except httpx.TransportError as e:  # connect, read and write errors, timeouts
                raise Transient(f"{type(e).__name__}: {e}") from e
            return response if response.status_code in accept else self._check(response)

        backoff = wait_exponential(multiplier=0.5, max=30.0) + wait_random(0, 1)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, Transient) and exc.retry_after_s is not None:
                return min(exc.retry_after_s, self._max_wait_s)
            return float(backoff(state))

        def before_sleep(state: RetryCallState) -> None:
            self.requests_retried += 1
            exc = state.outcome.exception() if state.outcome else None
            log.warning("oracle request failed (%s); retrying in %.1fs", exc, state.upcoming_sleep)

        retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            # Answers with Retry-After are waited out without limit on attempts: only the total wait bounds them.
            stop=stop_after_delay(self._max_wait_s) | StopTransientAfter(self._max_attempts),
            wait=wait, sleep=self._sleep, before_sleep=before_sleep, reraise=True,
        )
        try:
            return retrying(attempt)
        except Transient as e:
            raise OracleUnavailable(f"the oracle stayed unavailable: {e}") from e

    def _check(self, response: httpx.Response) -> httpx.Response:
        self._note_flag(response)
        status = response.status_code
        if status < 300:
            return response
        if status < 400:
            raise OracleProtocolError(f"the endpoint answered a redirect ({status}); redirects are not followed, "
                                      "point the campaign at the origin that serves the model")
        code, message, details = quoted_error(response)
        wait_s = retry_after(response)
        if status == 402 or (status == 429 and code == "budget_exhausted"):
            remaining = details.get("remaining", response.headers.get("X-Budget-Remaining"))
            raise OracleBudgetExhausted(int(remaining) if remaining is not None else None, 0)
        if says_too_large(response):
            raise BatchTooLarge(f"HTTP {status}: {message}" if code != "http_error" else message)
        if status == 429 or wait_s is not None or status in TRANSIENT_STATUS or code == "request_in_progress":
            raise Transient(f"HTTP {status} {code}: {message}", wait_s if wait_s is not None
                            else (1.0 if status == 429 else None))
        by = f" made with {self.keys.name()}" if self.keys.several else ""
        refusal = f"the oracle refused the request{by} ({status} {code}): {message}"
        if code == "suspected_extraction":  # the oracle's detector blocked the key: say after how much
            refusal += f" (the campaign had {self.inputs_answered} queries answered)"
        raise OracleError(code, refusal, status)

    def _note_flag(self, response: httpx.Response) -> None:
        value = response.headers.get(FLAG_HEADER)
        if value and self.flag is None:
            self.flag, self.flagged_after = value, self.inputs_answered
        if value:
            self.keys.flagged(value, self.inputs_answered)

    def _sleep(self, seconds: float) -> None:
        """Sleep in short slices so that a cancelled campaign does not sit out a long wait."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._interrupt()
            time.sleep(min(left, 0.25))
