"""Campaigns end to end: a real attacker API, real RQ workers, a real oracle process, real Redis."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy
from tests.attacker.conftest import (
    AttackerStack,
    oracle_answered,
    small_spec,
    submit,
    wait_final,
    wait_for,
)
from tests.conftest import OracleProcess


def direct_labels(oracle: OracleProcess, api_key: str, x: np.ndarray) -> np.ndarray:
    r = httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=encode_npy(x.astype(np.float32)), timeout=30,
                   headers={"Authorization": f"Bearer {api_key}", "Content-Type": NPY_MEDIA_TYPE,
                            "Accept": NPY_MEDIA_TYPE})
    r.raise_for_status()
    return decode_npy(r.content)


def test_small_campaign_end_to_end(attacker: AttackerStack, oracle: OracleProcess, oracle_key: tuple[str, str],
                                   mnist_test) -> None:
    client_id, api_key = oracle_key
    with attacker.client() as api:
        r = api.post("/attacks", json=small_spec(oracle.url, api_key, name="e2e"))
        assert r.status_code == 202, r.text
        cid = r.json()["id"]
        assert r.headers["Location"] == f"/attacks/{cid}"
        assert api_key not in api.get(f"/attacks/{cid}").text  # the key is never shown back

        record = wait_final(api, cid)
        assert record["state"] == "succeeded", record
        assert record["phase"] == "done" and record["progress"] == 1.0
        assert [e["rho"] for e in record["epochs"]] == [0, 1, 2]
        assert [e["set_size"] for e in record["epochs"]] == [30, 60, 120]
        q = record["queries"]
        assert (q["labelling"], q["agreement"], q["evaluation"], q["baseline"], q["total"]) == (120, 60, 60, 60, 300)
        res = record["results"]
        assert res["samples"] == 60 and 0.0 <= res["transfer_rate"] <= 1.0
        assert res["mean_linf"] == pytest.approx(0.3, abs=1e-6)
        # The honest baseline, measured in the same campaign: random ±ε on the same 60 images.
        assert res["noise_samples"] == 60 and 0.0 <= res["noise_rate"] <= 1.0
        assert res["lift_over_noise"] == pytest.approx(res["transfer_rate"] - res["noise_rate"])
        assert 0.5 <= res["clean_accuracy"] <= 1.0

        # Both sides agree on the queries spent, before anything else talks to the oracle.
        assert oracle_answered(oracle, client_id) == 300
        assert oracle.usage(client_id)["used"] == 300

        page = api.get(f"/attacks/{cid}/samples", params={"offset": 50, "limit": 25}).raise_for_status().json()
        assert (page["total"], len(page["items"]), page["next_offset"]) == (60, 10, None)
        first = api.get(f"/attacks/{cid}/samples", params={"limit": 25}).raise_for_status().json()
        assert first["next_offset"] == 25 and first["items"][0]["source"] == {"dataset": "mnist", "split": "test",
                                                                             "index": 30}
        image = Image.open(io.BytesIO(base64.b64decode(first["items"][0]["adversarial_png"])))
        assert image.format == "PNG" and image.size == (28, 28)

        npz = api.get(f"/attacks/{cid}/samples.npz")
        assert npz.status_code == 200
        with np.load(io.BytesIO(npz.content)) as s:
            arrays = {k: s[k] for k in s.files}
        assert arrays["x_adv"].dtype == np.float32 and arrays["x_adv"].shape == (60, 1, 28, 28)
        np.testing.assert_array_equal(arrays["x"], mnist_test.x[arrays["index"]])
        np.testing.assert_array_equal(arrays["y_true"], mnist_test.y[arrays["index"]])
        for i, item in enumerate(first["items"]):
            assert item["oracle_label_after"] == arrays["label_after"][i]
            assert item["oracle_label_before"] == arrays["label_before"][i]
        assert res["transfer_rate"] == pytest.approx(float(arrays["success"].mean()))

        picture = api.get(f"/attacks/{cid}/samples.png")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(picture.content)).format == "PNG"

        listed = api.get("/attacks", params={"state": "succeeded", "limit": 100}).raise_for_status().json()
        assert cid in [c["id"] for c in listed["items"]]
        metrics = api.get("/metrics").text
        assert 'bbrange_attack_campaigns{state="succeeded"}' in metrics
        assert 'bbrange_attack_oracle_queries_total{phase="labelling"}' in metrics
        assert "bbrange_attack_job_seconds_bucket" in metrics and "bbrange_attack_transfer_rate_bucket" in metrics

    # The samples' oracle labels are what the oracle says when asked directly (by another client).
    _, other_key = oracle.create_client(budget=1000, name="direct")
    np.testing.assert_array_equal(direct_labels(oracle, other_key, arrays["x_adv"]), arrays["label_after"])
    np.testing.assert_array_equal(direct_labels(oracle, other_key, arrays["x"]), arrays["label_before"])


def test_cancel_a_running_campaign(attacker: AttackerStack, oracle: OracleProcess,
                                   oracle_key: tuple[str, str]) -> None:
    client_id, api_key = oracle_key
    spec = small_spec(oracle.url, api_key, substitute={"rho": 9, "training": {"epochs": 3}})
    with attacker.client() as api:
        cid = submit(api, spec)
        wait_for(api, cid, lambda r: r["state"] == "running" and len(r["epochs"]) >= 2, what="two epochs")
        r = api.post(f"/attacks/{cid}/cancel")
        assert r.status_code == 202 and r.json()["cancel_requested"]
        record = wait_final(api, cid, timeout=60)
        assert record["state"] == "cancelled", record
        assert record["error"]["code"] == "cancelled"
        assert 2 <= len(record["epochs"]) < 10  # what it had is kept
        assert record["queries"]["total"] == oracle_answered(oracle, client_id) == oracle.usage(client_id)["used"]
        assert api.post(f"/attacks/{cid}/cancel").status_code == 409
        assert api.get(f"/attacks/{cid}/samples").json()["error"]["code"] == "samples_not_ready"


@pytest.mark.parametrize("oracle_key", [100], indirect=True)
def test_oracle_budget_runs_out_mid_campaign(attacker: AttackerStack, oracle: OracleProcess,
                                             oracle_key: tuple[str, str]) -> None:
    """Budget 100: agreement 50 and ρ=0's 30 fit; of ρ=1's 30 new points (requests of 16 + 14) the first
    request is answered and the second gets 429 budget_exhausted."""
    client_id, api_key = oracle_key
    with attacker.client() as api:
        cid = submit(api, small_spec(oracle.url, api_key, evaluation={"size": 50}))
        record = wait_final(api, cid)
        assert record["state"] == "failed" and record["error"]["code"] == "budget_exhausted", record
        assert "budget" in record["error"]["message"]
        assert len(record["epochs"]) == 1 and record["results"]["substitute_accuracy"] is not None
        q = record["queries"]
        assert (q["agreement"], q["labelling"], q["evaluation"]) == (50, 46, 0)
        assert oracle_answered(oracle, client_id) == 96 == oracle.usage(client_id)["used"] == q["total"]
        assert q["inputs_sent"] == 110  # the refused request was sent but not answered


def test_campaign_budget_cap_is_never_exceeded(attacker: AttackerStack, oracle: OracleProcess,
                                               oracle_key: tuple[str, str]) -> None:
    client_id, api_key = oracle_key
    with attacker.client() as api:
        cid = submit(api, small_spec(oracle.url, api_key, evaluation={"size": 50}, query_budget=70))
        record = wait_final(api, cid)
        assert record["state"] == "failed" and record["error"]["code"] == "budget_exhausted", record
        assert record["queries"]["total"] == 70 == oracle_answered(oracle, client_id)
        assert record["epochs"][0]["new_points_labelled"] == 20  # the engine labels what still fits


def test_several_workers_run_campaigns_at_once(attacker: AttackerStack, oracle: OracleProcess,
                                               oracle_key: tuple[str, str]) -> None:
    _, api_key = oracle_key
    spec = small_spec(oracle.url, api_key, substitute={"rho": 3})
    with attacker.client() as api:
        ids = [submit(api, spec) for _ in range(2)]
        records = [wait_final(api, cid) for cid in ids]
    assert all(r["state"] == "succeeded" for r in records), records
    assert records[0]["worker"].split("/")[0] != records[1]["worker"].split("/")[0]
    first, second = sorted(records, key=lambda r: r["started_at"])
    assert second["started_at"] < first["finished_at"]  # they overlapped
    # Same spec and seed against the same oracle: the same campaign.
    assert records[0]["results"] == records[1]["results"]


def test_jsma_campaign_from_an_uploaded_initial_set(attacker: AttackerStack, oracle: OracleProcess,
                                                    oracle_key: tuple[str, str], mnist_test) -> None:
    client_id, api_key = oracle_key
    buf = io.BytesIO()
    np.save(buf, (mnist_test.x[9000:9020] * 255).round().astype(np.uint8))  # uint8 is accepted too
    spec = small_spec(oracle.url, api_key, substitute={"rho": 1},
                      initial_set={"kind": "upload", "npy_base64": base64.b64encode(buf.getvalue()).decode()},
                      crafting={"method": "jsma", "theta": 1.0, "upsilon": 0.1, "target": "next"},
                      evaluation={"size": 8})
    with attacker.client() as api:
        cid = submit(api, spec)
        assert api.get(f"/attacks/{cid}").json()["spec"]["initial_set"] == {"kind": "upload", "shape": [20, 1, 28, 28]}
        record = wait_final(api, cid)
        assert record["state"] == "succeeded", record
        q = record["queries"]
        assert (q["labelling"], q["agreement"], q["evaluation"], q["baseline"]) == (40, 8, 8, 8)
        assert q["total"] == oracle_answered(oracle, client_id)
        items = api.get(f"/attacks/{cid}/samples").json()["items"]
    assert [it["source"]["index"] for it in items] == list(range(8))  # the upload is not a test-split range
    for it in items:
        assert it["target"] == (it["oracle_label_before"] + 1) % 10
        assert it["success"] == (it["oracle_label_after"] == it["target"])
        assert 0 <= it["l0"] <= 0.1 + 1e-9  # Υ = 10% of the features at most (0 where the substitute already agreed)
    assert any(it["l0"] > 0 for it in items)
    assert record["results"]["target_rate"] == record["results"]["transfer_rate"]
