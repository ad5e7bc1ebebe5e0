"""Every malformed or unacceptable predict request is a 4xx JSON error that says what is wrong, and costs nothing:
the oracle's request validation in-process (tests/unit/oracle_inprocess.py), each case refused before the
ledger charges or the model runs."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy
from tests.unit.oracle_inprocess import API_KEY, BUDGET, LABEL, InProcessOracle, start_inprocess_oracle


@pytest.fixture
def oracle() -> Iterator[InProcessOracle]:
    oracle = start_inprocess_oracle()
    yield oracle
    oracle.client.close()


@pytest.fixture
def refused(oracle: InProcessOracle) -> Iterator[InProcessOracle]:
    """The oracle, checked after the test to have charged and run nothing."""
    yield oracle
    assert oracle.ledger.charges == [] and oracle.predictor.predicted == [], "a refused request must not be charged"


def post(oracle: InProcessOracle, content: bytes, content_type: str = NPY_MEDIA_TYPE, model: str = "mnist",
         key: str = API_KEY, accept: str = "application/json") -> httpx.Response:
    return oracle.client.post(f"/v1/models/{model}/predict", content=content, headers={
        "Authorization": f"Bearer {key}", "Content-Type": content_type, "Accept": accept})


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
def test_bad_input_is_a_clear_4xx_and_not_charged(refused: InProcessOracle, case: str) -> None:
    content, content_type, status, code, phrase = CASES[case]
    r = post(refused, content, content_type)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert phrase in error["message"]


def test_pickled_npy_is_refused_without_unpickling(refused: InProcessOracle) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    r = post(refused, buf.getvalue())
    assert r.status_code == 400 and "Object arrays cannot be loaded" in r.json()["error"]["message"]


def test_batch_over_the_cap(refused: InProcessOracle) -> None:
    r = post(refused, encode_npy(np.zeros((1025, 1, 28, 28), np.uint8)))
    assert r.status_code == 422
    assert r.json()["error"] == {"code": "batch_too_large", "details": {},
                                 "message": "batch of 1025 inputs exceeds the limit of 1024"}


def test_oversized_body(refused: InProcessOracle) -> None:
    r = post(refused, b"\0" * (32 * 1024 * 1024 + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_a_json_body_has_its_own_smaller_cap() -> None:
    oracle = start_inprocess_oracle(max_json_body_bytes=1024)
    r = post(oracle, b'{"inputs": [' + b"0.5, " * 400 + b"0.5]}", "application/json")
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert oracle.ledger.charges == []


def test_unknown_model_and_route(refused: InProcessOracle) -> None:
    r = post(refused, encode_npy(image()), model="cifar")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_model" and r.json()["error"]["details"]["models"] == ["mnist"]
    r = refused.client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("authorization", "says"), [
    ("", "Authorization: Bearer <key>"), ("Basic abc", "Authorization: Bearer <key>"), ("Bearer stolen", "unknown API key"),
])
def test_no_or_an_unknown_key_is_401(refused: InProcessOracle, authorization: str, says: str) -> None:
    r = refused.client.post("/v1/models/mnist/predict", content=encode_npy(image()),
                            headers={"Authorization": authorization, "Content-Type": NPY_MEDIA_TYPE})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized" and says in r.json()["error"]["message"]


def test_a_valid_batch_is_charged_whole_and_answered(oracle: InProcessOracle) -> None:
    """The control of the refusals above: the same fakes charge and answer a batch they accept."""
    r = post(oracle, encode_npy(image(3)))
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "mnist", "labels": [LABEL] * 3, "budget_remaining": BUDGET - 3}
    assert r.headers["X-Budget-Remaining"] == str(BUDGET - 3)
    as_npy = post(oracle, b'{"inputs": ' + str(image(2).tolist()).encode() + b"}", "application/json",
                  accept=NPY_MEDIA_TYPE)
    assert as_npy.headers["Content-Type"] == NPY_MEDIA_TYPE and decode_npy(as_npy.content).tolist() == [LABEL] * 2
    assert oracle.ledger.charges == [3, 2] and oracle.predictor.predicted == [3, 2]
