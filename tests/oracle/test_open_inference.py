"""The Open Inference Protocol (KServe V2) on the oracle, spoken by NVIDIA's tritonclient (not written here):
the same keys, budgets, idempotency, refusals and metrics as our own route, and the same labels."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import ForeignModel, OracleProcess
from tests.foreign_model import reference_labels
from tests.oracle.test_budgets import metric_value


def client_for(oracle: OracleProcess) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(oracle.url.removeprefix("http://"), network_timeout=60.0)


def infer(client: triton.InferenceServerClient, model: str, x: np.ndarray, key: str, *, input_name: str,
          binary: bool = True, **headers: str) -> np.ndarray:
    tensor = triton.InferInput(input_name, list(x.shape), "FP32" if x.dtype == np.float32 else "UINT8")
    tensor.set_data_from_numpy(x, binary_data=binary)
    output = triton.InferRequestedOutput("label", binary_data=binary)
    result = client.infer(model, [tensor], outputs=[output], headers={"Authorization": f"Bearer {key}", **headers})
    labels = result.as_numpy("label")
    assert labels is not None and labels.dtype == np.int64
    return labels


def test_health_and_metadata(onnx_oracle: OracleProcess):
    client = client_for(onnx_oracle)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("foreign") and not client.is_model_ready("nope")
    meta = client.get_model_metadata("foreign")
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]}]
    assert meta["platform"] == "onnxruntime_onnx"
    assert client.get_model_metadata("mnist")["inputs"][0]["name"] == "input"
    assert client.get_server_metadata()["name"] == "blackbox-range-oracle"


@pytest.mark.parametrize("model", ["foreign", "mnist"])
def test_both_protocols_give_the_same_labels_and_charge_alike(onnx_oracle: OracleProcess, model: str,
                                                              foreign_model: ForeignModel, mnist_test):
    client = client_for(onnx_oracle)
    client_id, key = onnx_oracle.create_client(1000, f"v2-{model}")
    x = mnist_test.x[:64]
    input_name = "pixels" if model == "foreign" else "input"
    v2_binary = infer(client, model, x, key, input_name=input_name)
    v2_json = infer(client, model, x[:10], key, input_name=input_name, binary=False)
    v2_uint8 = infer(client, model, np.round(x[:10] * 255).astype(np.uint8), key, input_name=input_name)
    v1 = httpx.post(f"{onnx_oracle.url}/v1/models/{model}/predict", json={"inputs": x.tolist()},
                    headers={"Authorization": f"Bearer {key}"}, timeout=60).json()["labels"]
    np.testing.assert_array_equal(v2_binary, v1)
    np.testing.assert_array_equal(v2_json, v1[:10])
    if model == "foreign":
        np.testing.assert_array_equal(v2_binary, reference_labels(foreign_model.module, x))
    assert (v2_uint8 == v2_json).mean() >= 0.9  # rounding to 0..255 may move an input across a boundary
    assert onnx_oracle.usage(client_id)["used"] == 64 + 10 + 10 + 64
    assert metric_value(onnx_oracle.url, "bbrange_oracle_inputs_answered_total", client=client_id,
                        model=model) == 148
    assert metric_value(onnx_oracle.url, "bbrange_oracle_request_seconds_count", model=model,
                        encoding="v2-binary") >= 2


def test_refusals_are_v2_error_bodies(onnx_oracle: OracleProcess, mnist_test):
    client = client_for(onnx_oracle)
    client_id, key = onnx_oracle.create_client(5, "v2-refusals")
    with pytest.raises(InferenceServerException) as e:
        infer(client, "foreign", mnist_test.x[:1], "bbr_wrong", input_name="pixels")
    assert e.value.status() == "401" and "unknown API key" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        infer(client, "foreign", mnist_test.x[:6], key, input_name="pixels")
    assert e.value.status() == "429" and "exceeds the remaining budget of 5" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        infer(client, "foreign", np.zeros((1, 3, 28, 28), np.float32), key, input_name="pixels")
    assert e.value.status() == "400" and "expects [batch, 1, 28, 28]" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        infer(client, "foreign", mnist_test.x[:1] * 2, key, input_name="pixels")
    assert e.value.status() == "400" and "[0, 1]" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        infer(client, "foreign", mnist_test.x[:1], key, input_name="image")
    assert e.value.status() == "400" and "one input, 'pixels'" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        infer(client, "nope", mnist_test.x[:1], key, input_name="pixels")
    assert e.value.status() == "404"
    raw = httpx.post(f"{onnx_oracle.url}/v2/models/foreign/infer", content=b"{not json",
                     headers={"Authorization": f"Bearer {key}"})
    assert raw.status_code == 400 and set(raw.json()) == {"error", "code"}
    assert raw.json()["code"] == "malformed_json" and "body: Invalid JSON: key must be a string" in raw.json()["error"]
    assert onnx_oracle.usage(client_id)["used"] == 0
    assert metric_value(onnx_oracle.url, "bbrange_oracle_refusals_total", reason="bad_input", model="foreign") >= 4


def test_a_retried_infer_with_its_idempotency_key_is_answered_once_and_charged_once(onnx_oracle: OracleProcess,
                                                                                   mnist_test):
    client = client_for(onnx_oracle)
    client_id, key = onnx_oracle.create_client(100, "v2-retry")
    first = infer(client, "foreign", mnist_test.x[:8], key, input_name="pixels", **{"Idempotency-Key": "batch-1"})
    again = infer(client, "foreign", mnist_test.x[:8], key, input_name="pixels", **{"Idempotency-Key": "batch-1"})
    np.testing.assert_array_equal(first, again)
    assert onnx_oracle.usage(client_id)["used"] == 8
    with pytest.raises(InferenceServerException) as e:  # the same key with another batch
        infer(client, "foreign", mnist_test.x[8:16], key, input_name="pixels", **{"Idempotency-Key": "batch-1"})
    assert e.value.status() == "422"
    assert metric_value(onnx_oracle.url, "bbrange_oracle_replayed_inputs_total", client=client_id,
                        model="foreign") == 8
