"""The detector in a real oracle process: policies, the 403 that charges nothing, the admin API, the metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import get_args

import httpx
import numpy as np
import pytest

from bbrange.oracle.detection.config import Policy
from bbrange.oracle.detection.routes import DetectionView
from bbrange.shared.admin_schemas import DetectionPolicy, DetectionState
from bbrange.shared.processes import wait_until
from tests.conftest import OracleProcess, start_oracle
from tests.oracle.test_budgets import metric_value, predict
from tests.oracle.test_detection_prada import jbda_like


@pytest.fixture(scope="module")
def flagging_oracle(quick_model_dir, redis_server, tmp_path_factory) -> Iterator[OracleProcess]:
    """Policy flag for every model; clients can be switched to block by the admin."""
    oracle = start_oracle(quick_model_dir, redis_server.url, "bbdetect", tmp_path_factory.mktemp("logs"),
                          extra_env={"BBRANGE_DETECTION_DEFAULT": json.dumps({"policy": "flag"})})
    yield oracle
    oracle.stop()


def detection(oracle: OracleProcess, client_id: str) -> dict:
    with oracle.admin_client() as admin:
        return admin.detection(client_id).model_dump(mode="json")


def test_an_extraction_stream_is_flagged_then_blocked_and_cleared(flagging_oracle, mnist_test):
    oracle = flagging_oracle
    client_id, key = oracle.create_client(budget=100_000, name="extractor")
    x, _ = jbda_like(mnist_test.x[:150], mnist_test.y[:150], epochs=3, lam=0.1)
    flagged_at = None
    for i in range(0, len(x), 100):
        r = predict(oracle.url, key, x[i : i + 100])
        assert r.status_code == 200, r.text
        if "X-Extraction-Flagged" in r.headers:
            flagged_at = i
            break
        if i >= 300:  # the detector works behind the answers: give it a moment to catch up
            wait_until(lambda n=i + 100: detection(oracle, client_id)["models"][0]["queries"] >= n, 10, "detector")
    assert flagged_at is not None and flagged_at < 1200
    state = detection(oracle, client_id)
    assert state["flagged"] and state["flag"]["reason"] == "prada" and state["flag"]["queries"] <= flagged_at
    model = state["models"][0]
    assert model["policy"] == "flag" and model["statistic"] < 0.9
    assert all(n <= model["config"]["max_per_class"] for n in model["stored_points"].values())
    assert model["max_bytes"] == 10 * (64 * 196 + 40) + 300 * 6 + 160

    # The admin blocks this client: the next request is refused and charged nothing.
    with oracle.admin_client() as admin:
        assert admin.set_detection_policy(client_id, "block").policy_override == "block"
    used = oracle.usage(client_id)["used"]
    r = predict(oracle.url, key, mnist_test.x[:5])
    assert r.status_code == 403 and r.json()["error"]["code"] == "suspected_extraction", r.text
    assert r.json()["error"]["details"]["reason"] == "prada"
    assert oracle.usage(client_id)["used"] == used
    assert metric_value(oracle.url, "bbrange_oracle_refusals_total", reason="suspected_extraction") >= 1
    assert metric_value(oracle.url, "bbrange_oracle_detection_flags_total", reason="prada", policy="flag") >= 1
    assert metric_value(oracle.url, "bbrange_oracle_detection_flagged", client=client_id) == 1

    # Clearing the flag lets it query again, and forgets what it had sent.
    with oracle.admin_client() as admin:
        cleared = admin.clear_detection(client_id)
    assert not cleared.flagged and cleared.models[0]["queries"] == 0
    assert predict(oracle.url, key, mnist_test.x[:5]).status_code == 200
    assert metric_value(oracle.url, "bbrange_oracle_detection_flagged", client=client_id) == 0


def test_natural_queries_are_not_flagged(flagging_oracle, mnist_test):
    oracle = flagging_oracle
    client_id, key = oracle.create_client(budget=100_000, name="user")
    idx = np.random.default_rng(3).choice(len(mnist_test.x), 1500, replace=False)
    for i in range(0, 1500, 250):
        r = predict(oracle.url, key, mnist_test.x[idx[i : i + 250]])
        assert r.status_code == 200 and "X-Extraction-Flagged" not in r.headers
    wait_until(lambda: detection(oracle, client_id)["models"][0]["queries"] == 1500, 20, "the detector")
    state = detection(oracle, client_id)
    assert not state["flagged"] and state["models"][0]["statistic"] > 0.9


def test_detection_admin_needs_the_token_and_a_known_client(flagging_oracle):
    url = flagging_oracle.url
    assert httpx.get(f"{url}/v1/admin/clients/c_x/detection").status_code == 401
    with flagging_oracle.admin() as c:
        assert c.get("/v1/admin/clients/c_nobody/detection").status_code == 404
        assert c.put("/v1/admin/clients/c_nobody/detection/policy", json={"policy": "nope"}).status_code == 422


def test_the_admin_clients_view_of_detection_is_the_oracles() -> None:
    """DetectionState (bbrange.shared, for the admin client) mirrors the oracle's DetectionView field for field."""
    assert set(DetectionState.model_fields) == set(DetectionView.model_fields)
    assert set(get_args(DetectionPolicy)) == {p.value for p in Policy}
