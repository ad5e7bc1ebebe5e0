"""Campaigns against KServe's own model server (kserve 0.21, from .venv-kserve), over V2 and V1."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bbrange.attacker.campaigns import targets
from bbrange.attacker.campaigns.errors import OracleError
from bbrange.attacker.campaigns.spec.target import Target
from tests.attacker.conftest import AttackerStack, submit, wait_final
from tests.targets.checks import assert_complete
from tests.targets.conftest import KServeServer, tiny_spec


@pytest.mark.parametrize(("protocol", "wire"), [("open-inference-v2", "v2"), ("kserve-v1", "v1")])
def test_campaign_against_kserve(stack: AttackerStack, kserve_server: KServeServer, protocol: str, wire: str) -> None:
    target = {"protocol": protocol, "oracle_url": kserve_server.url, "model": "mnist"}
    if protocol == "kserve-v1":  # V1 serves no metadata; V2's GET /v2/models/mnist gives shape and classes
        target |= {"input_shape": [1, 28, 28], "num_classes": 10}
    before = kserve_server.seen("mnist", wire)
    with stack.client() as api:
        record = wait_final(api, submit(api, tiny_spec(target, name=f"kserve {protocol}")), timeout=300)
    requests, inputs = (a - b for a, b in zip(kserve_server.seen("mnist", wire), before, strict=True))
    results = assert_complete(record, inputs, eval_size=30)
    assert record["queries"]["inputs_sent"] == inputs  # nothing was sent twice
    assert results["clean_accuracy"] >= 0.7  # the labels are the model's, not noise
    # S0 (20), the augmented points (20), agreement, evaluation and baseline (30 each): one request each.
    assert requests == 5


@pytest.mark.parametrize("protocol", ["open-inference-v2", "kserve-v1"])
def test_only_labels_leave_the_adapter(kserve_server: KServeServer, mnist_test, protocol: str) -> None:
    """KServe answers probabilities; `label()` gives one integer per input and nothing else."""
    target = Target(protocol=protocol, oracle_url=kserve_server.url, model="mnist", input_shape=[1, 28, 28],
                    num_classes=10)
    with targets.connect(target) as oracle:
        labels = oracle.label(mnist_test.x[:40])
    assert isinstance(labels, np.ndarray) and labels.dtype == np.int64 and labels.shape == (40,)
    assert labels.min() >= 0 and labels.max() <= 9
    assert (labels == mnist_test.y[:40]).mean() >= 0.7


@pytest.mark.parametrize("protocol", ["open-inference-v2", "kserve-v1"])
def test_unknown_model_fails_at_once(kserve_server: KServeServer, protocol: str) -> None:
    target = Target(protocol=protocol, oracle_url=kserve_server.url, model="resnet", input_shape=[1, 28, 28],
                    num_classes=10)
    started = time.monotonic()
    with targets.connect(target) as oracle, pytest.raises(OracleError, match="serves no model 'resnet'") as e:
        oracle.describe()
    assert e.value.code == "unknown_model" and time.monotonic() - started < 5
