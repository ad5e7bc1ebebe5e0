"""Refusals: invalid specs (422 that say what is wrong), disallowed targets (403), unknown ids (404)."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest

from tests.attacker.conftest import AttackerStack, small_spec

ORACLE = "http://127.0.0.1:9"


def _spec(**overrides: Any) -> dict[str, Any]:
    return small_spec(ORACLE, "key", **overrides)


def _npy_b64(x: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, x)
    return base64.b64encode(buf.getvalue()).decode()


INVALID = [
    ({k: v for k, v in _spec().items() if k != "target"}, "target: Field required"),
    (_spec(substitute={"rho": -1}), "substitute.rho"),
    (_spec(substitute={"rho": "6"}), "substitute.rho: Input should be a valid integer"),
    (_spec(substitute={"preset": "resnet"}), "substitute.preset: Input should be 'papernot-mnist'"),
    (_spec(substitute={"lam": 0.0}), "λ = 0 would add copies of the points already labelled"),
    (_spec(substitute={"lam": -1.5}), "substitute.lam"),
    (_spec(crafting={"method": "fgsm", "eps": 1.5}), "crafting.fgsm.eps"),
    (_spec(crafting={"method": "deepfool"}), "crafting"),
    (_spec(crafting={"method": "jsma", "target": "fixed"}), "give target_class exactly when target is 'fixed'"),
    (_spec(crafting={"method": "jsma", "search_domain": "some"}), "crafting.jsma.search_domain"),
    (_spec(target={"oracle_url": "ftp://127.0.0.1/x", "model": "mnist", "api_key": "k"}),
     "only http and https URLs are supported"),
    (_spec(target={"oracle_url": "http://user:pw@127.0.0.1:8000", "model": "mnist", "api_key": "k"}),
     "credentials in the URL are not accepted"),
    (_spec(target={"oracle_url": ORACLE, "model": "../admin", "api_key": "k"}), "target.model"),
    (_spec(dataset="cifar10"), "dataset"),
    (_spec(evaluation={"size": 0}), "evaluation.size"),
    (_spec(query_budget=0), "query_budget"),
    (_spec(unexpected=True), "unexpected: Extra inputs are not permitted"),
    (_spec(initial_set={"kind": "upload", "npy_base64": "not base64!"}), "npy_base64 is not valid base64"),
    (_spec(initial_set={"kind": "upload", "npy_base64": _npy_b64(np.full((2, 1, 28, 28), 2.0, np.float32))}),
     "inputs must lie in [0, 1]"),
    (_spec(initial_set={"kind": "upload", "npy_base64": _npy_b64(np.zeros((2, 28, 28), np.float32))}),
     "(N, C, H, W)"),
]


@pytest.mark.parametrize(("body", "message"), INVALID, ids=[m[:40] for _, m in INVALID])
def test_invalid_spec_is_refused_with_a_clear_message(attacker: AttackerStack, body: dict, message: str) -> None:
    with attacker.client() as api:
        before = api.get("/attacks").json()["total"]
        r = api.post("/attacks", json=body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_request"
        assert message in error["message"], error["message"]
        assert api.get("/attacks").json()["total"] == before  # nothing was queued


def test_malformed_json_is_refused(attacker: AttackerStack) -> None:
    with attacker.client() as api:
        r = api.post("/attacks", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("url", [
    "http://10.0.0.1:8000", "http://169.254.169.254", "https://127.0.0.1:8000", "http://example.com",
    "http://127.0.0.1.nip.io:8000",
])
def test_target_outside_the_allowlist_is_refused(attacker: AttackerStack, url: str) -> None:
    with attacker.client() as api:
        before = api.get("/attacks").json()["total"]
        r = api.post("/attacks", json=_spec(target={"oracle_url": url, "model": "mnist", "api_key": "k"}))
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "target_not_allowed" and "allowlist" in error["message"]
        assert api.get("/attacks").json()["total"] == before


def test_unknown_campaign_and_bad_queries(attacker: AttackerStack) -> None:
    with attacker.client() as api:
        for method, path in [("GET", "/attacks/nope"), ("POST", "/attacks/nope/cancel"), ("DELETE", "/attacks/nope"),
                             ("GET", "/attacks/nope/samples"), ("GET", "/attacks/nope/samples.npz"),
                             ("GET", "/attacks/nope/samples.png")]:
            r = api.request(method, path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_campaign", (method, path, r.text)
        r = api.get("/attacks", params={"state": "paused"})
        assert r.status_code == 422 and "state" in r.json()["error"]["message"]
        assert api.get("/attacks", params={"limit": 0}).status_code == 422


def test_openapi_documents_the_spec_with_examples(attacker: AttackerStack) -> None:
    with attacker.client() as api:
        doc = api.get("/openapi.json").json()
    assert {"/attacks", "/attacks/{cid}", "/attacks/{cid}/cancel", "/attacks/{cid}/samples",
            "/attacks/{cid}/samples.npz", "/attacks/{cid}/samples.png"} <= set(doc["paths"])
    assert doc["components"]["schemas"]["CampaignSpec"]["examples"]
