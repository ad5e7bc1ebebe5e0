"""The issue's findings, against endpoints not written for bbrange (tests/targets/foreign_apps.py): our
protocol copied without metadata routes, JSON labels and a 256-input limit; another class order; a JSON API
unlike ours; TorchServe's wire format; redirects, foreign error pages and a bad key. Retries, Retry-After
and an endpoint that is down are tested in-process (tests/unit/test_target_client_inprocess.py)."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pytest

from bbrange.attacker.campaigns import targets
from bbrange.attacker.campaigns.errors import OracleError
from bbrange.attacker.campaigns.spec.target import Target
from tests.attacker.conftest import AttackerStack, submit, wait_final
from tests.conftest import OracleProcess
from tests.targets.checks import assert_complete
from tests.targets.conftest import ForeignApps, tiny_spec
from tests.targets.foreign_apps import COPYCAT_KEY, JSON_KEY, SECRET

MNIST = {"input_shape": [1, 28, 28], "num_classes": 10}
# /shuffled answers (3 * digit + 1) mod 10: oracle label o is digit 7 * (o - 1) mod 10.
SHUFFLED_MAP = [(7 * (o - 1)) % 10 for o in range(10)]


def copycat(foreign: ForeignApps, prefix: str = "/copycat", key: str = COPYCAT_KEY, **extra: object) -> dict:
    return {"protocol": "bbrange", "oracle_url": foreign.at(prefix), "model": "mnist", "api_key": key,
            **MNIST, **extra}


def seconds(record: dict) -> float:
    return (datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"])).total_seconds()


def test_copycat_without_metadata_answering_json_and_refusing_big_batches(stack: AttackerStack,
                                                                           foreign: ForeignApps) -> None:
    """No GET /v1/models, labels as JSON, at most 256 inputs a request: the first 413 (for the 300-input
    agreement batch) halves the batch size to 150, from the refused batch's size (not from the configured
    1,000: that would send the same 300 again), and it stays there; the refused inputs are sent but never
    counted as queries, and the record says the batch size the campaign settled on."""
    before = foreign.counts()
    spec = tiny_spec(copycat(foreign), evaluation={"split": "test", "size": 300})
    with stack.client() as api:
        record = wait_final(api, submit(api, spec), timeout=300)
    seen = foreign.counts() - before
    assert_complete(record, seen["copycat.inputs"], eval_size=300)
    assert seen["copycat.refused_inputs"] == 300  # 300 as one request, once, before 150 + 150
    assert record["queries"]["inputs_sent"] == record["queries"]["total"] + 300
    assert record["queries"]["batch_size"] == 150
    # S0 (20) and the new points (20), the refused 300, then agreement, evaluation and baseline as 150 + 150 each.
    assert seen["copycat.requests"] == 2 + 1 + 3 * 2


def test_a_422_saying_too_large_in_any_shape_halves_the_batch(foreign: ForeignApps, mnist_test) -> None:
    before = foreign.counts()
    with targets.connect(Target.model_validate(copycat(foreign, "/copycat422"))) as oracle:
        labels = oracle.label(mnist_test.x[:600])
        assert labels.shape == (600,) and oracle.batch_size == 150  # 600 refused, then 300, then 150s
    seen = foreign.counts() - before
    assert (seen["copycat422.inputs"], seen["copycat422.refused_inputs"]) == (600, 600 + 300)


def test_our_own_oracles_batch_too_large_halves_the_batch(oracle: OracleProcess, mnist_test) -> None:
    """Our oracle refuses more than 1,024 inputs with 422 batch_too_large ("exceeds the limit")."""
    client_id, key = oracle.create_client(budget=5000, name="batch-too-large")
    target = Target(oracle_url=oracle.url, model="mnist", api_key=key, max_batch_size=2000)
    with targets.connect(target) as client:
        assert client.label(mnist_test.x[:1100]).shape == (1100,)
        assert client.batch_size == 550  # half the refused 1,100
    assert oracle.usage(client_id)["used"] == 1100


def test_class_map_translates_another_class_order(stack: AttackerStack, foreign: ForeignApps, mnist_test) -> None:
    x, y = mnist_test.x[:100], mnist_test.y[:100]
    with targets.connect(Target.model_validate(copycat(foreign, "/shuffled"))) as raw:
        assert (raw.label(x) == y).mean() < 0.3  # its labels are not the dataset's
    with targets.connect(Target.model_validate(copycat(foreign, "/shuffled", class_map=SHUFFLED_MAP))) as mapped:
        assert (mapped.label(x) == y).mean() >= 0.7
    before = foreign.counts()
    with stack.client() as api:
        record = wait_final(api, submit(api, tiny_spec(copycat(foreign, "/shuffled", class_map=SHUFFLED_MAP))),
                            timeout=300)
    results = assert_complete(record, (foreign.counts() - before)["shuffled.inputs"], eval_size=30)
    assert results["clean_accuracy"] >= 0.7  # without the map it would be near 0 and "transfer" near 100%


def json_api(foreign: ForeignApps, prefix: str = "/classify", key: str = JSON_KEY, **api: object) -> Target:
    return Target.model_validate({
        "protocol": "http-json", "oracle_url": foreign.at(prefix), "model": "blobs",
        "auth": {"kind": "header", "name": "X-Api-Key", "value": key},
        "input_shape": [3, 48, 48], "num_classes": 5, "input_layout": "nhwc", "input_scale": "byte",
        "http_json": {"path": "/api/v3/classify", "request_template": {"images": "$inputs", "top_k": 1},
                      "labels_path": "results[*].class_id", **api}})


@pytest.mark.parametrize("path", [{}, {"labels_path": None, "scores_path": "results[*].probs"}])
def test_http_json_api_unlike_ours(foreign: ForeignApps, path: dict) -> None:
    from tests.targets.tiny_models import blobs

    x, y = blobs(40, seed=3)
    with targets.connect(json_api(foreign, **path)) as oracle:
        labels = oracle.label(x)
    assert labels.dtype == np.int64 and labels.shape == (40,)  # only labels, also from the probabilities
    assert (labels == y).mean() >= 0.9


def test_torchserve_campaign(stack: AttackerStack, foreign: ForeignApps) -> None:
    """TorchServe's wire format (not TorchServe itself, which needs Java): one PNG per request, top-5 back."""
    target = {"protocol": "torchserve", "oracle_url": foreign.at("/torchserve"), "model": "mnist", **MNIST}
    spec = tiny_spec(target, evaluation={"split": "test", "size": 20})
    before = foreign.counts()
    with stack.client() as api:
        record = wait_final(api, submit(api, spec), timeout=300)
    seen = foreign.counts() - before
    results = assert_complete(record, seen["torchserve.inputs"], eval_size=20)
    assert seen["torchserve.requests"] == record["queries"]["total"] == 20 + 20 + 3 * 20
    assert results["clean_accuracy"] >= 0.6


@pytest.mark.parametrize(("prefix", "code", "says"), [
    ("/moved", "oracle_protocol_error", "redirect (307)"),
    ("/broken", "oracle_refused", "HTTP 400 ("),
])
def test_redirects_and_foreign_error_pages(stack: AttackerStack, foreign: ForeignApps, prefix: str, code: str,
                                           says: str) -> None:
    target = {"protocol": "open-inference-v2", "oracle_url": foreign.at(prefix), "model": "mnist"}
    with stack.client() as api:
        record = wait_final(api, submit(api, tiny_spec(target)), timeout=120)
    assert record["state"] == "failed" and record["error"]["code"] == code, record
    assert says in record["error"]["message"] and "[phase: connecting]" in record["error"]["message"]
    assert SECRET not in record["error"]["message"] and "<html" not in record["error"]["message"]
    assert record["queries"]["total"] == 0


def test_a_bad_key_fails_in_the_first_seconds(stack: AttackerStack, foreign: ForeignApps) -> None:
    with stack.client() as api:
        record = wait_final(api, submit(api, tiny_spec(copycat(foreign, key="stolen-key"))), timeout=120)
    assert record["state"] == "failed" and record["error"]["code"] == "oracle_refused", record
    assert "unknown API key" in record["error"]["message"] and "[phase: connecting]" in record["error"]["message"]
    assert seconds(record) < 10 and record["queries"]["inputs_sent"] == 0


def test_a_bad_header_key_is_final(foreign: ForeignApps) -> None:
    from tests.targets.tiny_models import blobs

    started = time.monotonic()
    with targets.connect(json_api(foreign, key="wrong")) as oracle, pytest.raises(OracleError) as e:
        oracle.label(blobs(3, seed=0)[0])
    assert e.value.status == 403 and oracle.requests_retried == 0 and time.monotonic() - started < 5


def test_torchserve_top_k_is_reduced_to_a_label(foreign: ForeignApps, mnist_test) -> None:
    target = Target(protocol="torchserve", oracle_url=foreign.at("/torchserve"), model="mnist", **MNIST)
    with targets.connect(target) as oracle:
        labels = oracle.label(mnist_test.x[:10])
    assert labels.dtype == np.int64 and labels.shape == (10,) and (labels == mnist_test.y[:10]).mean() >= 0.6


def test_a_copy_without_metadata_asks_for_the_shape(foreign: ForeignApps) -> None:
    target = Target(oracle_url=foreign.at("/copycat"), model="mnist", api_key=COPYCAT_KEY)
    with targets.connect(target) as oracle, pytest.raises(OracleError, match="give target.input_shape") as e:
        oracle.describe()
    assert e.value.code == "no_metadata"
