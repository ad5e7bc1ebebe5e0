"""Several API keys taking turns (targets/keyring.py), against endpoints simulated in-process
(httpx.MockTransport): round robin per predict request, retries on the same key, spent or blocked keys out of
the rotation, the flag per key, keys never shown back; and the spec's 422s for bad key lists."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import httpx
import numpy as np
import pytest

from bbrange.attacker.campaigns.errors import OracleError
from bbrange.attacker.campaigns.spec.target import MAX_KEYS, Target
from bbrange.attacker.campaigns.targets import ADAPTERS, TargetClient
from bbrange.attacker.campaigns.targets.client import FLAG_HEADER
from bbrange.attacker.campaigns.targets.refusals import OracleBudgetExhausted
from bbrange.attacker.engine import PartiallyAnswered
from tests.specs import campaign_spec
from tests.unit.attacker_inprocess import InProcessApi
from tests.unit.mock_endpoint import URL, images

KEYS = ["sybil-key-alpha-0001", "sybil-key-bravo-0002", "sybil-key-charlie-0003"]
Reply = Callable[[int], httpx.Response]  # the answer to a batch of n inputs


def answer(n: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json={"labels": [3] * n, "predictions": [3] * n}, headers=headers)  # ours, V1


def refusal(status: int, code: str) -> Reply:
    body = {"error": {"code": code, "message": f"{code} said the endpoint", "details": {}}}
    return lambda _: httpx.Response(status, json=body)


class Endpoint:
    """Our protocol without GET /v1/models; each key's predict answers from its own replies in turn (the last one
    for ever; labels by default). Records, per predict request, the key it came with (its index in KEYS)."""

    def __init__(self, header: str = "Authorization", prefix: str = "Bearer ",
                 replies: dict[int, list[Reply]] | None = None) -> None:
        self.header, self.prefix = header, prefix
        self.replies = replies or {}
        self.keys: list[int] = []
        self.idempotency: list[str] = []
        self.answered = [0] * len(KEYS)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = KEYS.index(request.headers[self.header].removeprefix(self.prefix))
        if request.method == "GET":
            return httpx.Response(404 if request.url.path == "/v1/models" else 200, json={})
        n = int(np.load(io.BytesIO(request.content)).shape[0]) if request.url.path.endswith("/predict") else (
            len(json.loads(request.content)["instances"]))
        self.keys.append(key)
        self.idempotency.append(request.headers["Idempotency-Key"])
        replies = self.replies.get(key, [])
        response = (replies.pop(0) if len(replies) > 1 else replies[0] if replies else answer)(n)
        if response.status_code == 200:
            self.answered[key] += n
        return response


@pytest.fixture
def make() -> Iterator[Callable[..., TargetClient]]:
    made: list[TargetClient] = []

    def make(endpoint: Endpoint, **target: Any) -> TargetClient:
        spec = Target.model_validate({"oracle_url": URL, "model": "mnist", "api_keys": KEYS, "input_shape": [1, 28, 28],
                                      "num_classes": 10, "max_batch_size": 2, **target})
        client = ADAPTERS[spec.protocol](spec, transport=httpx.MockTransport(endpoint), max_attempts=3)
        client._sleep = lambda _: None  # type: ignore[method-assign]  # no waiting between retries
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def usage(client: TargetClient, field: str) -> list[Any]:
    return [getattr(k, field) for k in client.keys.usage]


def test_each_predict_request_goes_out_with_the_next_key(make: Callable[..., TargetClient]) -> None:
    endpoint = Endpoint()
    client = make(endpoint)
    client.describe()  # checks every key (GET /v1/usage) without moving the rotation
    assert client.label(images(9)).tolist() == [3] * 9  # 5 requests: 2, 2, 2, 2, 1
    client.label(images(2))
    assert endpoint.keys == [0, 1, 2, 0, 1, 2]
    assert usage(client, "queries") == usage(client, "inputs_sent") == [4, 3, 4] == endpoint.answered
    assert sum(usage(client, "queries")) == client.inputs_answered == 11


def test_a_retry_keeps_its_key_and_the_rotation_goes_on(make: Callable[..., TargetClient]) -> None:
    endpoint = Endpoint(replies={0: [refusal(503, "busy"), answer]})
    client = make(endpoint)
    client.label(images(4))
    assert endpoint.keys == [0, 0, 1] and endpoint.idempotency[0] == endpoint.idempotency[1]
    assert usage(client, "inputs_sent") == [4, 2, 0] and usage(client, "queries") == [2, 2, 0]


def test_a_spent_key_leaves_the_rotation_and_the_campaign_goes_on(make: Callable[..., TargetClient],
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    endpoint = Endpoint(replies={1: [answer, refusal(429, "budget_exhausted")]})
    client = make(endpoint)
    with caplog.at_level(logging.WARNING):
        assert client.label(images(12)).shape == (12,)
    # Key 1 answers once, then its budget is spent: the refused batch goes again with key 2 (a new
    # Idempotency-Key), and keys 0 and 2 carry the rest.
    assert endpoint.keys == [0, 1, 2, 0, 1, 2, 0]
    assert endpoint.idempotency[4] != endpoint.idempotency[5]
    assert usage(client, "dropped") == [None, "budget_exhausted", None]
    assert usage(client, "queries") == [6, 2, 4] and usage(client, "inputs_sent") == [6, 4, 4]
    assert client.inputs_answered == 12 and client.inputs_sent == 14
    assert "key 1 of 3 leaves the rotation" in caplog.text


def test_a_402_spends_a_key_as_a_429_budget_exhausted_does(make: Callable[..., TargetClient]) -> None:
    endpoint = Endpoint(replies={0: [refusal(402, "payment_required")]})
    client = make(endpoint)
    client.label(images(4))
    assert endpoint.keys == [0, 1, 2] and usage(client, "dropped") == ["budget_exhausted", None, None]


def test_when_every_key_is_spent_the_campaign_stops_with_budget_exhausted(make: Callable[..., TargetClient]) -> None:
    spent = refusal(429, "budget_exhausted")
    endpoint = Endpoint(replies={0: [answer, spent], 1: [spent], 2: [answer, answer, spent]})
    client = make(endpoint)
    with pytest.raises(PartiallyAnswered) as e:
        client.label(images(20))
    assert isinstance(e.value.__cause__, OracleBudgetExhausted)
    assert e.value.answered == 2 + 4 == client.inputs_answered
    assert usage(client, "dropped") == ["budget_exhausted"] * 3
    with pytest.raises(OracleBudgetExhausted):  # later requests go with the last key, and are refused as it is
        client.label(images(1))


def test_a_blocked_key_leaves_the_rotation_and_the_last_block_stops_the_campaign(
        make: Callable[..., TargetClient]) -> None:
    blocked = refusal(403, "suspected_extraction")
    endpoint = Endpoint(replies={1: [blocked]})
    client = make(endpoint)
    client.label(images(6))
    assert endpoint.keys == [0, 1, 2, 0] and usage(client, "dropped") == [None, "suspected_extraction", None]
    endpoint.replies = {0: [blocked], 2: [blocked]}
    with pytest.raises(OracleError, match="made with key 0 of 3") as e:  # key 2, then key 0, the last one left
        client.label(images(6))
    assert e.value.code == "suspected_extraction" and endpoint.keys[4:] == [2, 0]


def test_other_refusals_stop_the_campaign_whatever_the_keys(make: Callable[..., TargetClient]) -> None:
    endpoint = Endpoint(replies={0: [refusal(400, "invalid_input")]})
    with pytest.raises(OracleError, match="made with key 0 of 3"):
        make(endpoint).label(images(2))
    assert endpoint.keys == [0]


def test_the_flag_is_noted_per_key_and_first_for_the_campaign(make: Callable[..., TargetClient]) -> None:
    def flagged(n: int) -> httpx.Response:
        return answer(n, {FLAG_HEADER: "prada; queries=4"})

    client = make(Endpoint(replies={1: [answer, flagged]}))
    client.label(images(12))
    assert usage(client, "flagged") == [None, "prada; queries=4", None]
    assert usage(client, "flagged_after_queries") == [None, 8, None]  # the campaign's answered before
    assert usage(client, "flagged_after_key_queries") == [None, 2, None]  # the key's own
    assert (client.flag, client.flagged_after) == ("prada; queries=4", 8)


def test_header_values_take_turns_on_any_protocol(make: Callable[..., TargetClient]) -> None:
    endpoint = Endpoint(header="X-Api-Key", prefix="")
    client = make(endpoint, protocol="kserve-v1", api_keys=None,
                  auth={"kind": "header", "name": "X-Api-Key", "values": KEYS})
    client.label(images(8))
    assert endpoint.keys == [0, 1, 2, 0]


def test_a_wrong_key_among_several_is_named_by_its_index(make: Callable[..., TargetClient]) -> None:
    def transport(request: httpx.Request) -> httpx.Response:
        wrong = request.headers["Authorization"].endswith(KEYS[2])
        return httpx.Response(401 if wrong else 200, json={"error": {"code": "invalid_api_key", "message": "no"}})

    client = make(transport)  # type: ignore[arg-type]
    with pytest.raises(OracleError, match="made with key 2 of 3"):
        client.describe()


def test_keys_never_leave_the_client(make: Callable[..., TargetClient], caplog: pytest.LogCaptureFixture) -> None:
    client = make(Endpoint(replies={0: [refusal(429, "budget_exhausted")], 1: [refusal(403, "suspected_extraction")]}))
    with caplog.at_level(logging.DEBUG):
        client.label(images(6))
    shown = json.dumps([asdict(k) for k in client.keys.usage]) + caplog.text + repr(client.target)
    assert not any(k in shown for k in KEYS)


def test_keys_are_never_shown_back_by_the_api(api: InProcessApi) -> None:
    r = api.submit(campaign_spec(target={"api_keys": KEYS}))
    assert r.status_code == 202, r.text
    record = api.get(f"/attacks/{r.json()['id']}").raise_for_status()
    assert record.json()["spec"]["target"]["api_keys"] == ["**********"] * 3
    stored = b"".join(api.svc.connection.dump(k) or b"" for k in api.svc.connection.keys("*"))
    assert b"round_robin" in stored  # the spec is there, its target sealed
    assert not any(k in record.text or k.encode() in stored for k in KEYS)  # sealed in Redis


BAD_KEYS = [
    ({"api_keys": ["only-one"]}, "api_keys: List should have at least 2 items"),
    ({"api_keys": [f"k{i}" for i in range(MAX_KEYS + 1)]}, f"api_keys: List should have at most {MAX_KEYS} items"),
    ({"api_keys": ["k0", "k1", "k0"]}, "api_keys[2] repeats api_keys[0]: give each key once"),
    ({"api_keys": ["k0", ""]}, "api_keys.1: Value should have at least 1"),
    ({"api_key": "k", "api_keys": ["k0", "k1"]}, "give api_key or api_keys, not both"),
    ({"api_keys": ["k0", "k1"], "auth": {"kind": "bearer", "token": "t"}},
     "give api_keys or auth, not both"),
    ({"auth": {"kind": "bearer", "token": "t", "tokens": ["k0", "k1"]}},
     "give token or tokens, not both"),
    ({"auth": {"kind": "header", "name": "X-Key", "values": ["k0", "k0"]}},
     "values[1] repeats values[0]"),
    ({"auth": {"kind": "bearer"}}, "bearer auth needs a token (or tokens, several)"),
    ({"api_keys": ["k0", "k1"], "key_rotation": "random"}, "key_rotation: Input should be 'round_robin'"),
]


@pytest.mark.parametrize(("target", "says"), BAD_KEYS, ids=[s[:40] for _, s in BAD_KEYS])
def test_a_bad_key_list_is_refused_with_the_reason(api: InProcessApi, target: dict[str, Any], says: str) -> None:
    r = api.submit(campaign_spec(target={"api_key": None, **target}))  # the tests' spec has one key: none
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request" and says in r.json()["error"]["message"], r.text
    assert "k0" not in r.text and api.total() == 0


@pytest.mark.parametrize(("args", "env", "target"), [
    (["--api-key", "a"], {}, {"api_key": "a"}),
    (["--api-key", "a", "--api-key", "b", "--api-key", "c"], {}, {"api_keys": ["a", "b", "c"]}),
    ([], {"BBRANGE_ORACLE_API_KEY": "a b"}, {"api_keys": ["a", "b"]}),
])
def test_attack_run_takes_one_key_or_several(monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str],
                                             target: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from bbrange.attacker.campaigns.cli import main
    from bbrange.cli import app

    submitted: list[dict[str, Any]] = []
    monkeypatch.setattr(main, "submit_and_follow", lambda spec, *_, **__: submitted.append(spec))
    monkeypatch.delenv("BBRANGE_ORACLE_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["attack", "run", "--token", "t", *args], env=env)
    assert result.exit_code == 0, result.output
    assert {k: v for k, v in submitted[0]["target"].items() if k.startswith("api_key")} == target
