"""Serving systems' own shapes, against real processes (tests/targets/foreign_apps.py): Triton's flat input, FP32
label output and 400 for a batch over its cap; TF Serving's nested labels; an API taking each image in an object,
answering class ids as text and refusing in RFC 7807 problem details. The targets the API must refuse are
tested in-process (tests/unit/test_attacker_api_inprocess.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bbrange.attacker.campaigns import targets
from bbrange.attacker.campaigns.errors import OracleError
from bbrange.attacker.campaigns.spec.target import Target
from tests.attacker.conftest import AttackerStack, submit, wait_final
from tests.targets.checks import assert_complete
from tests.targets.conftest import USER_AGENT, ForeignApps, tiny_spec
from tests.targets.foreign_apps import TRITON_MAX_BATCH

MNIST = {"input_shape": [1, 28, 28], "num_classes": 10}


def test_triton_campaign_flat_input_fp32_labels_and_its_batch_cap(stack: AttackerStack, foreign: ForeignApps) -> None:
    """Input [-1, 784], labels FP32 [-1, 1], at most 64 a request (Triton's 400): the labels are read as labels
    (clean accuracy is the model's, not 10%), the 100-input agreement batch is halved to 50 once and the record
    says so; the requests carry the configured User-Agent."""
    target = {"protocol": "open-inference-v2", "oracle_url": foreign.at("/triton"), "model": "mnist", **MNIST}
    before = foreign.counts()
    with stack.client() as api:
        record = wait_final(api, submit(api, tiny_spec(target, evaluation={"split": "test", "size": 100})),
                            timeout=300)
    seen = foreign.counts() - before
    results = assert_complete(record, seen["triton.inputs"], eval_size=100)
    assert results["clean_accuracy"] >= 0.7
    assert record["queries"]["batch_size"] == 50 < TRITON_MAX_BATCH
    assert seen["triton.refused_inputs"] == 100 and record["queries"]["inputs_sent"] == record["queries"]["total"] + 100
    agents = {k.split(": ", 1)[1] for k in seen if k.startswith("triton.user-agent: ")}
    assert agents == {USER_AGENT}


def test_tf_serving_nested_labels(foreign: ForeignApps, mnist_test: Any) -> None:
    target = Target(protocol="kserve-v1", oracle_url=foreign.at("/tfserving"), model="mnist", **MNIST)
    with targets.connect(target) as oracle:
        labels = oracle.label(mnist_test.x[:200])
    assert (labels == mnist_test.y[:200]).mean() >= 0.7  # read as 0 for every input before: 10%
    assert len(set(labels.tolist())) == 10


def objects_api(foreign: ForeignApps, **target: Any) -> Target:
    return Target.model_validate({
        "protocol": "http-json", "oracle_url": foreign.at("/objects"), "model": "mnist", **MNIST, **target,
        "http_json": {"path": "/api/classify", "request_template": {"images": "$inputs"},
                      "input_template": {"pixels": "$input"}, "labels_path": "results[*].class_id",
                      **target.pop("http_json", {})}})


def test_each_image_in_an_object_and_class_ids_as_text(foreign: ForeignApps, mnist_test: Any) -> None:
    before = foreign.counts()
    with targets.connect(objects_api(foreign)) as oracle:
        labels = oracle.label(mnist_test.x[:300])
    assert (labels == mnist_test.y[:300]).mean() >= 0.7
    assert (foreign.counts() - before)["objects.requests"] == 1  # one request for the batch, not 300


def test_problem_details_are_quoted(foreign: ForeignApps, mnist_test: Any) -> None:
    with targets.connect(objects_api(foreign, input_layout="nhwc")) as oracle, pytest.raises(OracleError) as e:
        oracle.label(mnist_test.x[:3])
    assert e.value.status == 422
    assert "Invalid image: each image must be {'pixels': [1, 28, 28]} (CHW), got [28, 28, 1]" in e.value.message
