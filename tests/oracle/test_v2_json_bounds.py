"""The JSON of a V2 infer request has /v1's protections (issue 25, items 8c and 9): the JSON body cap, the
parser's bounded nesting, and the two parser threads that every JSON body of either route is parsed on."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from bbrange.oracle.api import request_body as predict_input
from bbrange.oracle.api.routes import v2
from bbrange.oracle.settings import OracleSettings
from tests.conftest import OracleProcess, RedisServer

JSON_CAP = 8 * 1024 * 1024  # BBRANGE_MAX_JSON_BODY_BYTES's default, which the session's oracles run with
IMAGE_BYTES = 28 * 28 * 4


def tensor(**fields: Any) -> dict[str, Any]:
    return {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", **fields}


def infer(url: str, key: str, content: Any, header_length: int | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = str(header_length)
    return httpx.post(f"{url}/v2/models/mnist/infer", content=content, headers=headers, timeout=60)


def binary_request(head: bytes) -> tuple[bytes, int]:
    return head + bytes(IMAGE_BYTES), len(head)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_too_deep_is_a_400_that_says_why(oracle: OracleProcess, depth: int) -> None:
    client_id, key = oracle.create_client(10)
    as_json = '{"inputs": [' + json.dumps(tensor())[:-1] + ', "data": ' + nested(depth) + "}]}"
    binary_head = json.dumps({"inputs": [tensor(parameters={"binary_data_size": IMAGE_BYTES})],
                              "parameters": {"deep": "@"}}).replace('"@"', nested(depth))
    for response in (infer(oracle.url, key, as_json.encode()),
                     infer(oracle.url, key, *binary_request(binary_head.encode()))):
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "malformed_json"
        assert "recursion limit exceeded" in response.json()["error"]
    v1 = httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=b'{"inputs": ' + nested(depth).encode() + b"}",
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, timeout=60)
    assert v1.status_code == 400 and "recursion limit exceeded" in v1.json()["error"]["message"], v1.text
    assert oracle.usage(client_id)["used"] == 0


def test_json_over_the_json_cap_is_refused_before_it_is_parsed(oracle: OracleProcess) -> None:
    _, key = oracle.create_client(0)
    padded = b'{"inputs": []' + b" " * JSON_CAP + b"}"  # valid JSON, one cap's worth of it and more
    for content in (padded, iter([padded[:JSON_CAP // 2], padded[JSON_CAP // 2:]])):  # declared, then streamed
        r = infer(oracle.url, key, content)
        assert r.status_code == 413 and r.json()["code"] == "body_too_large", r.text
    body, header_length = binary_request(padded)  # binary tensor data after more JSON than the cap
    r = infer(oracle.url, key, body, header_length)
    assert r.status_code == 413 and r.json()["code"] == "body_too_large", r.text
    assert f"limit of {JSON_CAP} bytes for JSON" in r.json()["error"]
    # Binary tensor data only count towards the general cap: a batch larger than the JSON cap is read.
    head = json.dumps({"inputs": [tensor(shape=[3000, 1, 28, 28], parameters={"binary_data_size": 3000 * IMAGE_BYTES})]
                       }).encode()
    r = infer(oracle.url, key, head + bytes(3000 * IMAGE_BYTES), len(head))
    assert r.status_code == 400 and r.json()["code"] == "batch_too_large", r.text


def test_json_is_parsed_two_at_a_time_on_the_same_two_threads() -> None:
    lock = threading.Lock()
    running, most, threads = 0, 0, set()

    def slow_parse(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        time.sleep(0.05)
        with lock:
            running -= 1
        return i

    async def burst() -> list[int]:
        return await asyncio.gather(*(predict_input.parse_json(slow_parse, i) for i in range(8)))

    assert asyncio.run(burst()) == list(range(8))
    assert most == 2 and len(threads) == 2


@pytest.fixture
def in_process(quick_model_dir: Path, redis_server: RedisServer) -> Iterator[tuple[TestClient, str]]:
    """The oracle app in this process (its Redis and model real), for what only its threads show."""
    from bbrange.oracle.api.app import create_app

    settings = OracleSettings(redis_url=redis_server.url, redis_prefix="bbinprocess", model_dir=quick_model_dir,
                              device="cpu", admin_token="in-process-admin", dynamic_batching=False)
    with TestClient(create_app(settings)) as client:
        created = client.post("/v1/admin/clients", json={"name": "threads", "budget": 100},
                              headers={"Authorization": "Bearer in-process-admin"})
        yield client, created.json()["api_key"]


def test_both_routes_parse_json_bodies_on_the_json_parser_threads(in_process: tuple[TestClient, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client, key = in_process
    parsed_on: dict[str, list[str]] = {"v1": [], "v2": []}

    def recorded(route: str, parse: Any) -> Any:
        def parse_and_record(*args: Any) -> Any:
            parsed_on[route].append(threading.current_thread().name)
            return parse(*args)
        return parse_and_record

    monkeypatch.setattr(predict_input, "decode_inputs", recorded("v1", predict_input.decode_inputs))
    monkeypatch.setattr(v2, "parse_infer", recorded("v2", v2.parse_infer))
    auth = {"Authorization": f"Bearer {key}"}
    image = np.full((1, 1, 28, 28), 0.5, np.float32)
    v1 = client.post("/v1/models/mnist/predict", json={"inputs": image.tolist()}, headers=auth)
    as_json = client.post("/v2/models/mnist/infer", headers=auth,
                          json={"inputs": [tensor(data=image.reshape(-1).tolist())]})
    head = json.dumps({"inputs": [tensor(parameters={"binary_data_size": IMAGE_BYTES})]}).encode()
    binary = client.post("/v2/models/mnist/infer", content=head + image.tobytes(),
                         headers={**auth, "Inference-Header-Content-Length": str(len(head))})
    assert [r.status_code for r in (v1, as_json, binary)] == [200, 200, 200], [v1.text, as_json.text, binary.text]
    assert as_json.json()["outputs"][0]["data"] == v1.json()["labels"]
    assert parsed_on["v1"][0].startswith("json-parse") and parsed_on["v2"][0].startswith("json-parse")
    # A tensor's short description before its binary data is decoded as a .npy body is, not queued for a parser.
    assert not parsed_on["v2"][1].startswith("json-parse")
