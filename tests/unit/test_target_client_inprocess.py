"""The target client's retries and refusals against an endpoint simulated in-process (httpx.MockTransport),
its waits recorded instead of slept: what is retried and after how long, what is final, what an exhausted
budget or a partly answered call books, and how a refused batch size is halved."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from bbrange.attacker.campaigns.errors import OracleError, OracleProtocolError, OracleUnavailable
from bbrange.attacker.campaigns.spec.target import Target
from bbrange.attacker.campaigns.targets import ADAPTERS, TargetClient
from bbrange.attacker.campaigns.targets.client import FLAG_HEADER
from bbrange.attacker.campaigns.targets.refusals import OracleBudgetExhausted, clip, retry_after
from bbrange.attacker.engine import PartiallyAnswered
from tests.unit.mock_endpoint import URL, images

Reply = Callable[[httpx.Request], httpx.Response]


class Endpoint:
    """Our protocol without GET /v1/models (the spec gives the shape): predict answers from `replies` in turn
    (the last one for ever), label 3 for each input by default."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.batches: list[int] = []  # inputs of each predict request, refused ones included
        self.keys: list[str] = []  # the Idempotency-Key of each

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200 if request.url.path == "/v1/usage" else 404, json={})
        n = int(np.lib.format.read_array(_Reader(request.content)).shape[0])
        self.batches.append(n)
        self.keys.append(request.headers["Idempotency-Key"])
        reply = self.replies.pop(0) if len(self.replies) > 1 else (self.replies[0] if self.replies else labels())
        return reply(request)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.data[self.at:] if n < 0 else self.data[self.at:self.at + n]
        self.at += len(chunk)
        return chunk


def labels(label: int = 3, headers: dict[str, str] | None = None) -> Reply:
    def reply(request: httpx.Request) -> httpx.Response:
        n = int(np.lib.format.read_array(_Reader(request.content)).shape[0])
        return httpx.Response(200, json={"labels": [label] * n}, headers=headers)
    return reply


def error(status: int, code: str = "oops", headers: dict[str, str] | None = None, **details: Any) -> Reply:
    body = {"error": {"code": code, "message": f"{code} said the endpoint", "details": details}}
    return lambda _: httpx.Response(status, json=body, headers=headers)


def down(_: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def make(waits: list[float]) -> Iterator[Callable[..., TargetClient]]:
    made: list[TargetClient] = []

    def make(endpoint: Endpoint, max_attempts: int = 3, max_wait_s: float = 600.0, **target: Any) -> TargetClient:
        spec = Target.model_validate({"oracle_url": URL, "model": "mnist", "api_key": "k", "input_shape": [1, 28, 28],
                                      "num_classes": 10, **target})
        client = ADAPTERS[spec.protocol](spec, transport=httpx.MockTransport(endpoint), max_attempts=max_attempts,
                                         max_wait_s=max_wait_s)
        client._sleep = waits.append  # type: ignore[method-assign]  # record the waits instead of sleeping
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_transient_failures_are_retried_with_the_same_idempotency_key(make: Callable[..., TargetClient],
                                                                       waits: list[float]) -> None:
    endpoint = Endpoint(error(503, "busy"), down, labels())
    client = make(endpoint)
    assert client.label(images(4)).tolist() == [3] * 4
    assert client.requests_retried == 1 + 1 and len(waits) == 2 and all(0 < w <= 31 for w in waits)
    assert endpoint.batches == [4, 4, 4] and len(set(endpoint.keys)) == 1  # one key for the batch, every try
    assert client.inputs_sent == 4 * 3 and client.inputs_answered == 4


def test_retry_after_is_waited_out_without_using_up_attempts(make: Callable[..., TargetClient],
                                                             waits: list[float]) -> None:
    busy = error(503, "warming_up", {"Retry-After": "7"})
    client = make(Endpoint(busy, busy, busy, busy, labels()), max_attempts=2)
    assert client.label(images(5)).shape == (5,)
    assert waits == [7.0] * 4 and client.requests_retried == 4


def test_retry_after_is_bounded_by_the_longest_wait(make: Callable[..., TargetClient], waits: list[float]) -> None:
    # The bound is on real time: with the waits recorded, not slept, it is reached by retrying for 0.2 s.
    client = make(Endpoint(error(429, "rate_limited", {"Retry-After": "3600"})), max_wait_s=0.2)
    with pytest.raises(OracleUnavailable, match="stayed unavailable"):
        client.label(images(1))
    assert waits and all(w == 0.2 for w in waits)


@pytest.mark.parametrize("protocol", ["bbrange", "open-inference-v2", "kserve-v1", "torchserve"])
def test_an_endpoint_that_stays_down_is_unavailable_after_max_attempts(make: Callable[..., TargetClient],
                                                                       protocol: str) -> None:
    """Describing the model is retried like any request: a refused connection is not an internal error."""
    client = make(Endpoint(), max_attempts=2, protocol=protocol)
    client._client._transport = httpx.MockTransport(down)
    with pytest.raises(OracleUnavailable, match="ConnectError"):
        client.describe()
    assert client.requests_retried == 1


@pytest.mark.parametrize(("status", "code"), [(401, "unauthorized"), (403, "revoked"), (400, "bad_request"),
                                              (422, "wrong_shape")])
def test_a_refusal_is_final_and_quoted(make: Callable[..., TargetClient], status: int, code: str) -> None:
    endpoint = Endpoint(error(status, code))
    client = make(endpoint)
    with pytest.raises(OracleError) as e:
        client.label(images(2))
    assert (e.value.status, e.value.code) == (status, code) and f"{code} said the endpoint" in str(e.value)
    assert client.requests_retried == 0 and endpoint.batches == [2]


def test_a_wrong_key_fails_when_the_model_is_described(make: Callable[..., TargetClient]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "unknown API key"}})

    client = make(Endpoint())
    client._client._transport = httpx.MockTransport(refuse)
    with pytest.raises(OracleError, match="unknown API key") as e:
        client.describe()
    assert e.value.status == 401 and client.requests_retried == 0


def test_a_redirect_is_not_followed(make: Callable[..., TargetClient]) -> None:
    client = make(Endpoint(lambda _: httpx.Response(307, headers={"Location": "http://elsewhere.test/"})))
    with pytest.raises(OracleProtocolError, match=r"redirect \(307\)"):
        client.label(images(1))


def test_an_exhausted_budget_after_answered_batches_books_what_was_answered(
        make: Callable[..., TargetClient]) -> None:
    endpoint = Endpoint(labels(), error(429, "budget_exhausted", remaining=1))
    client = make(endpoint, max_batch_size=4)
    with pytest.raises(PartiallyAnswered) as e:
        client.label(images(10))
    assert e.value.answered == 4 and isinstance(e.value.__cause__, OracleBudgetExhausted)
    assert e.value.__cause__.remaining == 1 and e.value.__cause__.requested == 4
    fresh = make(Endpoint(error(429, "budget_exhausted", remaining=0)))
    with pytest.raises(OracleBudgetExhausted):
        fresh.label(images(2))


def test_a_batch_refused_as_too_large_is_halved_and_stays_halved(make: Callable[..., TargetClient]) -> None:
    def capped(request: httpx.Request) -> httpx.Response:
        n = int(np.lib.format.read_array(_Reader(request.content)).shape[0])
        return error(413, "body_too_large")(request) if n > 25 else labels()(request)

    endpoint = Endpoint(capped)
    client = make(endpoint, max_batch_size=100)
    assert client.label(images(80)).shape == (80,) and client.batch_size == 20
    assert endpoint.batches == [80, 40, 20, 20, 20, 20]  # from the refused batch's own size
    assert client.label(images(30)).shape == (30,) and endpoint.batches[6:] == [20, 10]
    assert client.inputs_answered == 110 and client.inputs_sent == 110 + 80 + 40


def test_a_single_input_refused_as_too_large_is_final(make: Callable[..., TargetClient]) -> None:
    client = make(Endpoint(error(422, "batch_too_large")), max_batch_size=2)
    with pytest.raises(OracleError, match="refuses even a single input") as e:
        client.label(images(2))
    assert e.value.code == "batch_too_large"


def test_the_extraction_flag_is_noted_once_with_what_was_answered_before(make: Callable[..., TargetClient]) -> None:
    flagged = labels(headers={FLAG_HEADER: "prada; queries=40"})
    client = make(Endpoint(labels(), flagged, labels(headers={FLAG_HEADER: "prada; queries=99"})), max_batch_size=5)
    client.label(images(15))
    assert (client.flag, client.flagged_after) == ("prada; queries=40", 5)


def test_a_label_outside_the_classes_is_a_protocol_error(make: Callable[..., TargetClient]) -> None:
    client = make(Endpoint(labels(label=10)))
    with pytest.raises(PartiallyAnswered) as e:  # answered (and charged) before it could be read
        client.label(images(2))
    assert e.value.answered == 2 and "outside 0..9" in str(e.value.__cause__)


# ------------------------------------------------------------------ refusals.py, alone (quoting: tests/targets/test_answers.py)


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("0.5", 0.5), ("-3", 0.0), ("Wed, 21 Oct 2015", None),
                                                (None, None)])
def test_retry_after_is_read_in_seconds_or_ignored(value: str | None, seconds: float | None) -> None:
    assert retry_after(httpx.Response(503, headers={} if value is None else {"Retry-After": value})) == seconds


def test_clip_keeps_foreign_text_on_one_bounded_line() -> None:
    assert clip("a\nb\x00\x1fc") == "a b c"
    clipped = clip("x" * 500, 20)
    assert len(clipped) == 20 and clipped.endswith("…")


def test_an_exhausted_budget_says_what_was_asked_and_what_is_left() -> None:
    e = OracleBudgetExhausted(3, 16)
    assert (e.remaining, e.requested) == (3, 16) and "16 inputs asked for, 3 left" in str(e)
    assert "unknown left" in str(OracleBudgetExhausted(None, 1))
