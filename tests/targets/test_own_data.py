"""Campaigns on a team's own images: a 3x48x48 domain with 5 classes, uploaded with the spec or read from
the operator's data volume (BBRANGE_ATTACK_DATASETS_DIR)."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from bbrange.attacker.campaigns.spec.builder import campaign_spec
from tests.attacker.conftest import AttackerStack, submit, wait_final
from tests.targets.checks import assert_complete
from tests.targets.conftest import BLOBS_SHAPE, ForeignApps, KServeServer
from tests.targets.foreign_apps import JSON_KEY
from tests.targets.tiny_models import blobs

DOMAIN = {"input_shape": list(BLOBS_SHAPE), "num_classes": 5,
          "class_names": ["red", "green", "blue", "red-2", "green-2"]}


def own_spec(target: dict[str, Any], initial_set: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    return campaign_spec(target, dataset="custom", domain=DOMAIN, initial_set=initial_set, rho=1, lam=0.1,
                         train_epochs=2, eval_size=30, evaluation={"source": source})


def b64(write: Any) -> str:
    buf = io.BytesIO()
    write(buf)
    return base64.b64encode(buf.getvalue()).decode()


def test_uploaded_3x48x48_dataset_against_kserve_v2(stack: AttackerStack, kserve_server: KServeServer) -> None:
    x0, _ = blobs(20, seed=5)
    x_eval, y_eval = blobs(30, seed=6)
    spec = own_spec({"protocol": "open-inference-v2", "oracle_url": kserve_server.url, "model": "blobs"},
                    {"kind": "upload", "npy_base64": b64(lambda f: np.save(f, x0))},
                    {"kind": "upload", "npz_base64": b64(lambda f: np.savez(f, x=x_eval, y=y_eval))})
    before = kserve_server.seen("blobs", "v2")
    with stack.client() as api:
        cid = submit(api, spec)
        record = wait_final(api, cid, timeout=300)
        shown = api.get(f"/attacks/{cid}").json()["spec"]
        page = api.get(f"/attacks/{cid}/samples", params={"limit": 5}).raise_for_status().json()
    _, inputs = (a - b for a, b in zip(kserve_server.seen("blobs", "v2"), before, strict=True))
    results = assert_complete(record, inputs, eval_size=30)
    assert results["clean_accuracy"] >= 0.9
    assert shown["initial_set"] == {"kind": "upload", "shape": [20, 3, 48, 48]}  # summarised, not echoed
    assert page["total"] == 30 and len(page["items"]) == 5


def test_data_volume_files_against_a_json_api(stack: AttackerStack, foreign: ForeignApps) -> None:
    target = {"protocol": "http-json", "oracle_url": foreign.at("/classify"), "model": "blobs",
              "auth": {"kind": "header", "name": "X-Api-Key", "value": JSON_KEY},
              "input_shape": list(BLOBS_SHAPE), "num_classes": 5, "input_layout": "nhwc", "input_scale": "byte",
              "http_json": {"path": "/api/v3/classify", "request_template": {"images": "$inputs"},
                            "labels_path": "results[*].class_id"}}
    spec = own_spec(target, {"kind": "file", "name": "blobs_s0.npz", "size": 20},
                    {"kind": "file", "name": "blobs_eval.npz"})
    before = foreign.counts()
    with stack.client() as api:
        record = wait_final(api, submit(api, spec), timeout=300)
        assert JSON_KEY not in api.get(f"/attacks/{record['id']}").text
    results = assert_complete(record, (foreign.counts() - before)["classify.inputs"], eval_size=30)
    assert results["clean_accuracy"] >= 0.9
