"""Refusals through a real oracle process and its Redis: a refused request is a 4xx JSON error and the real
ledger charges nothing; a chunked body over the cap is cut off as uvicorn streams it. Each refusal case is
tested in-process (tests/unit/test_oracle_requests_inprocess.py)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from bbrange.shared.wire import NPY_MEDIA_TYPE, encode_npy


@pytest.fixture
def client(oracle):
    client_id, key = oracle.create_client(1000)
    yield key
    assert oracle.usage(client_id)["used"] == 0, "a refused request must not be charged"


def post(oracle, key: str, content: bytes, content_type: str = NPY_MEDIA_TYPE, model: str = "mnist") -> httpx.Response:
    return httpx.post(f"{oracle.url}/v1/models/{model}/predict", content=content,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": content_type}, timeout=30)


@pytest.mark.parametrize(("content", "content_type", "status", "code"), [
    (encode_npy(np.full((2, 1, 28, 28), 1.5, np.float32)), NPY_MEDIA_TYPE, 422, "out_of_range"),
    (b'{"inputs": [[[[0.5,', "application/json", 400, "malformed_json"),
])
def test_bad_input_is_a_4xx_and_not_charged(oracle, client, content: bytes, content_type: str, status: int,
                                            code: str) -> None:
    r = post(oracle, client, content, content_type)
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text


def test_oversized_chunked_body_without_content_length(oracle, client):
    def chunks():
        for _ in range(40):
            yield b"\0" * (1024 * 1024)

    r = httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=chunks(),
                   headers={"Authorization": f"Bearer {client}", "Content-Type": NPY_MEDIA_TYPE}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_unknown_model(oracle, client):
    r = post(oracle, client, encode_npy(np.zeros((2, 1, 28, 28), np.float32)), model="cifar")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_model" and r.json()["error"]["details"]["models"] == ["mnist"]
