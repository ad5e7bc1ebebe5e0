"""Every malformed or unacceptable request is a 4xx JSON error that says what is wrong, and costs nothing."""

from __future__ import annotations

import io

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


def image(n: int = 2) -> np.ndarray:
    return np.full((n, 1, 28, 28), 0.5, dtype=np.float32)


def with_value(value: float) -> np.ndarray:
    x = image()
    x[1, 0, 3, 4] = value
    return x


CASES = {
    "wrong shape": (encode_npy(np.zeros((2, 28, 28), np.float32)), NPY_MEDIA_TYPE, 422, "wrong_shape",
                    "(batch, 1, 28, 28)"),
    "wrong image size": (encode_npy(np.zeros((2, 1, 32, 32), np.float32)), NPY_MEDIA_TYPE, 422, "wrong_shape",
                         "(2, 1, 32, 32)"),
    "NaN": (encode_npy(with_value(np.nan)), NPY_MEDIA_TYPE, 422, "non_finite", "NaN"),
    "inf": (encode_npy(with_value(np.inf)), NPY_MEDIA_TYPE, 422, "non_finite", "infinite"),
    "above range": (encode_npy(with_value(1.5)), NPY_MEDIA_TYPE, 422, "out_of_range", "[0, 1]"),
    "below range": (encode_npy(with_value(-0.1)), NPY_MEDIA_TYPE, 422, "out_of_range", "-0.1"),
    "float64": (encode_npy(image().astype(np.float64)), NPY_MEDIA_TYPE, 422, "unsupported_dtype", "float64"),
    "int32": (encode_npy(image().astype(np.int32)), NPY_MEDIA_TYPE, 422, "unsupported_dtype", "int32"),
    "empty batch": (encode_npy(np.zeros((0, 1, 28, 28), np.float32)), NPY_MEDIA_TYPE, 422, "empty_batch", "empty"),
    "malformed npy": (b"\x93NUMPY garbage", NPY_MEDIA_TYPE, 400, "malformed_npy", ".npy"),
    "truncated npy": (encode_npy(image())[:-100], NPY_MEDIA_TYPE, 400, "malformed_npy", ".npy"),
    "malformed JSON": (b'{"inputs": [[[[0.5,', "application/json", 400, "malformed_json", "Invalid JSON"),
    "JSON booleans": (b'{"inputs": [[[[true]]]]}', "application/json", 400, "malformed_json", "valid number"),
    "JSON wrong key": (b'{"images": []}', "application/json", 400, "malformed_json", "inputs"),
    "JSON ragged": (b'{"inputs": [[[[0.5, 0.5], [0.5]]]]}', "application/json", 422, "wrong_shape", "ragged"),
    "JSON wrong shape": (b'{"inputs": [[[[0.5]]]]}', "application/json", 422, "wrong_shape", "(1, 1, 1, 1)"),
    "unsupported media type": (b"abc", "text/plain", 415, "unsupported_media_type", "application/x-npy"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_clear_4xx_and_not_charged(oracle, client, case):
    content, content_type, status, code, phrase = CASES[case]
    r = post(oracle, client, content, content_type)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert phrase in error["message"]


def test_pickled_npy_is_refused_without_unpickling(oracle, client):
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    r = post(oracle, client, buf.getvalue())
    assert r.status_code == 400 and "Object arrays cannot be loaded" in r.json()["error"]["message"]


def test_batch_over_the_cap(oracle, client):
    r = post(oracle, client, encode_npy(np.zeros((1025, 1, 28, 28), np.uint8)))
    assert r.status_code == 422
    assert r.json()["error"] == {"code": "batch_too_large", "details": {},
                                 "message": "batch of 1025 inputs exceeds the limit of 1024"}


def test_oversized_body(oracle, client):
    r = post(oracle, client, b"\0" * (32 * 1024 * 1024 + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_oversized_chunked_body_without_content_length(oracle, client):
    def chunks():
        for _ in range(40):
            yield b"\0" * (1024 * 1024)

    r = httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=chunks(),
                   headers={"Authorization": f"Bearer {client}", "Content-Type": NPY_MEDIA_TYPE}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_unknown_model_and_route(oracle, client):
    r = post(oracle, client, encode_npy(image()), model="cifar")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_model" and r.json()["error"]["details"]["models"] == ["mnist"]
    r = httpx.get(f"{oracle.url}/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
