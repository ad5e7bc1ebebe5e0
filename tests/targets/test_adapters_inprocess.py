"""The adapters' logic against endpoints simulated in-process (httpx.MockTransport): batch sizes after a refusal,
answered batches that are counted even when their answer is refused, the User-Agent, V2 metadata with variable or
flat inputs, per-input templates, and what of a foreign metadata answer an error may quote."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from bbrange.attacker.campaigns.errors import OracleError, OracleProtocolError
from bbrange.attacker.campaigns.spec.target import Target
from bbrange.attacker.campaigns.targets import ADAPTERS, TargetClient
from bbrange.attacker.engine import QueryCounter

Handler = Callable[[httpx.Request], httpx.Response]
URL = "http://oracle.test:8080"
MNIST = {"input_shape": [1, 28, 28], "num_classes": 10}


def client(target: dict[str, Any], handler: Handler, **kwargs: Any) -> TargetClient:
    spec = Target.model_validate({"oracle_url": URL, "model": "mnist", **target})
    return ADAPTERS[spec.protocol](spec, transport=httpx.MockTransport(handler), max_attempts=1, **kwargs)


def images(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (n, 1, 28, 28)).astype(np.float32)


def v2_server(inputs: list[dict], outputs: list[dict], cap: int | None = None,
              seen: list[dict] | None = None) -> Handler:
    """V2 metadata as given; infer answers label 3 for each input (FP32 [-1, 1]), refusing more than `cap` with
    Triton's 400."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"name": "mnist", "inputs": inputs, "outputs": outputs})
        tensor = json.loads(request.content)["inputs"][0]
        if seen is not None:
            seen.append(tensor)
        n = tensor["shape"][0]
        if cap is not None and n > cap:
            return httpx.Response(400, json={"error": f"inference request batch-size must be <= {cap} for 'mnist'"})
        return httpx.Response(200, json={"outputs": [{"name": "label", "datatype": "FP32", "shape": [n, 1],
                                                      "data": [3.0] * n}]})

    return handle


LABEL_OUT = [{"name": "label", "datatype": "FP32", "shape": [-1, 1]}]
IMAGE_IN = [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]


def test_a_refused_batch_is_halved_from_its_own_size() -> None:
    """Triton's 400 for a cap of 64; a 200-input call with the configured maximum at 1,000: 200 → 100 → 50."""
    seen: list[dict] = []
    with client({"protocol": "open-inference-v2", "num_classes": 10},
                v2_server(IMAGE_IN, LABEL_OUT, cap=64, seen=seen)) as oracle:
        labels = oracle.label(images(200))
        assert labels.tolist() == [3] * 200 and oracle.batch_size == 50
    assert [t["shape"][0] for t in seen] == [200, 100, 50, 50, 50, 50]


def test_a_single_input_refused_as_too_large_says_what_the_endpoint_said() -> None:
    with client({"protocol": "open-inference-v2", "num_classes": 10}, v2_server(IMAGE_IN, LABEL_OUT, cap=0)) as oracle, \
            pytest.raises(OracleError, match="batch-size must be <= 0") as e:
        oracle.label(images(2))
    assert e.value.code == "batch_too_large"


def json_api(answers: list[Any], seen: list[dict] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(json.loads(request.content))
        return httpx.Response(200, json={"results": answers.pop(0)})

    return handle


HTTP_JSON = {"protocol": "http-json", **MNIST,
             "http_json": {"path": "/classify", "request_template": {"images": "$inputs"}, "labels_path": "results"}}


@pytest.mark.parametrize("answered_first", [True, False])
def test_an_answered_batch_whose_answer_is_refused_is_still_counted(answered_first: bool) -> None:
    """The endpoint answered (and charged) the batch; that the answer cannot be read does not unspend it."""
    unreadable = [[0.4]] * 64
    answers = [[1] * 64, unreadable] if answered_first else [unreadable]
    with client({**HTTP_JSON, "max_batch_size": 64}, json_api(answers)) as oracle:
        counter = QueryCounter(oracle)
        with pytest.raises(OracleProtocolError, match=r"not a whole number.*\[0\.4, 0\.4"):
            counter.label(images(128 if answered_first else 64))
    assert counter.usage.by_phase["labelling"] == (128 if answered_first else 64)


def test_class_ids_as_text_and_a_per_input_template() -> None:
    seen: list[dict] = []
    api = {"path": "/classify", "request_template": {"images": "$inputs", "top_k": 1},
           "input_template": {"pixels": "$input", "format": "chw"}, "labels_path": "results[*].class_id"}
    x = images(3)
    with client({**HTTP_JSON, "http_json": api},
                json_api([[{"class_id": "7"}, {"class_id": "2"}, {"class_id": "1"}]], seen)) as oracle:
        assert oracle.label(x).tolist() == [7, 2, 1]
    body = seen[0]
    assert body["top_k"] == 1 and [set(i) for i in body["images"]] == [{"pixels", "format"}] * 3
    assert np.allclose(np.asarray([i["pixels"] for i in body["images"]]), x)


@pytest.mark.parametrize(("user_agent", "sent"), [(None, "python-httpx/"), ("Mozilla/5.0 (X11)", "Mozilla/5.0 (X11)")])
def test_the_user_agent_is_a_setting_and_names_no_tool(user_agent: str | None, sent: str) -> None:
    agents: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        agents.append(request.headers["user-agent"])
        return httpx.Response(200, json={"results": [4]})

    with client(HTTP_JSON, handle, user_agent=user_agent) as oracle:
        oracle.label(images(1))
    assert agents[0].startswith(sent) and "bbrange" not in agents[0]


def test_v2_metadata_with_variable_image_axes_asks_for_the_shape() -> None:
    variable = [{"name": "x", "datatype": "FP32", "shape": [-1, 1, -1, -1]}]
    with client({"protocol": "open-inference-v2", "num_classes": 10}, v2_server(variable, LABEL_OUT)) as oracle, \
            pytest.raises(OracleProtocolError, match=r"variable \(-1\): give target.input_shape"):
        oracle.describe()
    seen: list[dict] = []
    with client({"protocol": "open-inference-v2", **MNIST}, v2_server(variable, LABEL_OUT, seen=seen)) as oracle:
        assert oracle.label(images(2)).tolist() == [3, 3]
    assert seen[0]["shape"] == [2, 1, 28, 28]


def test_a_flat_v2_input_is_sent_flat() -> None:
    flat = [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 784]}]
    with client({"protocol": "open-inference-v2", "num_classes": 10}, v2_server(flat, LABEL_OUT)) as oracle, \
            pytest.raises(OracleProtocolError, match=r"takes flat inputs .*give target.input_shape"):
        oracle.describe()
    with client({"protocol": "open-inference-v2", "input_shape": [3, 28, 28], "num_classes": 10},
                v2_server(flat, LABEL_OUT)) as oracle, pytest.raises(OracleProtocolError, match="784 values, not the 2352"):
        oracle.describe()
    seen: list[dict] = []
    x = images(5)
    with client({"protocol": "open-inference-v2", **MNIST}, v2_server(flat, LABEL_OUT, seen=seen)) as oracle:
        assert oracle.input_shape == (1, 28, 28) and oracle.label(x).tolist() == [3] * 5
    assert seen[0]["name"] == "INPUT__0" and seen[0]["shape"] == [5, 784]
    assert np.allclose(np.asarray(seen[0]["data"]), x.reshape(-1))


def test_a_label_only_v2_output_asks_for_num_classes() -> None:
    with client({"protocol": "open-inference-v2"}, v2_server(IMAGE_IN, LABEL_OUT)) as oracle, \
            pytest.raises(OracleProtocolError, match="give target.num_classes"):
        oracle.describe()


LONG = "n" * 5000


@pytest.mark.parametrize(("target", "metadata", "says"), [
    ({"protocol": "bbrange", "api_key": "k"},
     {"models": [{"name": f"{LONG}{i}", "input_shape": [1, 28, 28], "num_classes": 10} for i in range(2000)]},
     "and 1990 more"),
    ({"protocol": "bbrange", "api_key": "k"},
     {"models": [{"name": "mnist", "input_shape": [1, f"28{LONG}", 28], "num_classes": 10}]},
     "GET /v1/models answered metadata this adapter cannot read"),
    ({"protocol": "open-inference-v2"},
     {"inputs": [{"name": "x", "shape": [-1, "twenty-eight" + LONG, 28]}], "outputs": []},
     "GET /v2/models/mnist answered metadata this adapter cannot read"),
    ({"protocol": "open-inference-v2"},
     {"inputs": IMAGE_IN, "outputs": [{"name": LONG, "datatype": "FP32", "shape": [-1, 1]}]},
     "does not say how many classes"),
])
def test_foreign_metadata_is_never_quoted_unbounded(target: dict, metadata: dict, says: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={} if request.url.path == "/v1/usage" else metadata)

    with client(target, handle) as oracle, pytest.raises((OracleError, OracleProtocolError)) as e:
        oracle.describe()
    message = str(e.value)
    assert says in message and len(message) < 1000, message[:2000]
