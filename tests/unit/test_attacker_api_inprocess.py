"""The attacker API's answers in-process (tests/unit/attacker_inprocess.py): invalid specs (422 that say what is
wrong), disallowed targets (403), unknown ids (404), who may call what (401/403), listing and cancelling."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest

from bbrange.attacker.campaigns.storage.records import CampaignState
from tests.specs import DEFAULT_ORACLE, campaign_spec
from tests.unit.attacker_inprocess import ADMIN, InProcessApi, auth


def _npy_b64(x: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, x)
    return base64.b64encode(buf.getvalue()).decode()


INVALID = [
    ({k: v for k, v in campaign_spec().items() if k != "target"}, "target: Field required"),
    (campaign_spec(substitute={"rho": -1}), "substitute.rho"),
    (campaign_spec(substitute={"rho": "6"}), "substitute.rho: Input should be a valid integer"),
    (campaign_spec(substitute={"preset": "resnet"}), "substitute.preset: Input should be 'papernot-mnist'"),
    (campaign_spec(substitute={"lam": 0.0}), "λ = 0 would add copies of the points already labelled"),
    (campaign_spec(substitute={"lam": -1.5}), "substitute.lam"),
    (campaign_spec(crafting={"method": "fgsm", "eps": 1.5}), "crafting.fgsm.eps"),
    (campaign_spec(crafting={"method": "deepfool"}), "crafting"),
    (campaign_spec(crafting={"method": "jsma", "target": "fixed"}), "give target_class exactly when target is 'fixed'"),
    (campaign_spec(crafting={"method": "jsma", "search_domain": "some"}), "crafting.jsma.search_domain"),
    (campaign_spec(target={"oracle_url": "ftp://127.0.0.1/x"}), "only http and https URLs are supported"),
    (campaign_spec(target={"oracle_url": "http://user:pw@127.0.0.1:8000"}), "credentials in the URL are not accepted"),
    (campaign_spec(target={"model": "../admin"}), "target.model"),
    (campaign_spec(dataset="cifar10"), "dataset"),
    (campaign_spec(evaluation={"size": 0}), "evaluation.size"),
    (campaign_spec(query_budget=0), "query_budget"),
    (campaign_spec(unexpected=True), "unexpected: Extra inputs are not permitted"),
    (campaign_spec(initial_set={"kind": "upload", "npy_base64": "not base64!"}), "npy_base64 is not valid base64"),
    (campaign_spec(initial_set={"kind": "upload", "npy_base64": _npy_b64(np.full((2, 1, 28, 28), 2.0, np.float32))}),
     "inputs must lie in [0, 1]"),
    (campaign_spec(initial_set={"kind": "upload", "npy_base64": _npy_b64(np.zeros((2, 28, 28), np.float32))}),
     "(N, C, H, W)"),
]


@pytest.mark.parametrize(("body", "message"), INVALID, ids=[m[:40] for _, m in INVALID])
def test_invalid_spec_is_refused_with_a_clear_message(api: InProcessApi, body: dict, message: str) -> None:
    r = api.submit(body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert message in error["message"], error["message"]
    assert api.total() == 0 and api.svc.queue.count == 0  # nothing was kept nor queued


def _nested(levels: int) -> Any:
    template: Any = "$inputs"
    for _ in range(levels):
        template = {"a": template}
    return template


HTTP_JSON = {"protocol": "http-json", "input_shape": [1, 28, 28], "num_classes": 10,
             "http_json": {"request_template": {"images": "$inputs"}, "labels_path": "x"}}


@pytest.mark.parametrize(("target", "says"), [
    ({"http_json": {"request_template": _nested(900), "labels_path": "x"}}, "nested more than 16 levels"),
    ({"http_json": {"request_template": {"x": "$inputs", "pad": "p" * 200_000}, "labels_path": "x"}},
     "more than 16384"),
    ({"oracle_url": "http://127.0.0.1:80\n00"}, "control characters"),  # urlsplit drops it: it was accepted, then failed later
])
def test_unbounded_or_malformed_targets_are_refused(api: InProcessApi, target: dict, says: str) -> None:
    r = api.submit(campaign_spec(target={**HTTP_JSON, **target}))
    assert r.status_code == 422 and says in r.json()["error"]["message"], r.text[:1000]
    assert api.total() == 0
    assert api.submit(campaign_spec(target=HTTP_JSON)).status_code == 202  # the same target, bounded, is accepted


def test_malformed_json_is_refused(api: InProcessApi) -> None:
    r = api.post("/attacks", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("url", [
    "http://10.0.0.1:8000", "http://169.254.169.254", "https://127.0.0.1:8000", "http://example.com",
    "http://127.0.0.1.nip.io:8000",
])
def test_target_outside_the_allowlist_is_refused(api: InProcessApi, url: str) -> None:
    r = api.submit(campaign_spec(target={"oracle_url": url}))
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "target_not_allowed" and "allowlist" in error["message"]
    assert error["details"] == {"oracle_url": url}
    assert api.total() == 0


def test_unknown_campaign_and_bad_queries(api: InProcessApi) -> None:
    for method, path in [("GET", "/attacks/nope"), ("POST", "/attacks/nope/cancel"), ("DELETE", "/attacks/nope"),
                         ("GET", "/attacks/nope/samples"), ("GET", "/attacks/nope/samples.npz"),
                         ("GET", "/attacks/nope/samples.png")]:
        r = api.client.request(method, path, headers=auth(api.token))
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_campaign", (method, path, r.text)
    r = api.get("/attacks", params={"state": "paused"})
    assert r.status_code == 422 and "state" in r.json()["error"]["message"]
    assert api.get("/attacks", params={"limit": 0}).status_code == 422
    assert api.get("/attacks", params={"offset": -1}).status_code == 422


def test_openapi_documents_the_spec_with_examples(api: InProcessApi) -> None:
    doc = api.client.get("/openapi.json").json()
    assert {"/attacks", "/attacks/{cid}", "/attacks/{cid}/cancel", "/attacks/{cid}/samples",
            "/attacks/{cid}/samples.npz", "/attacks/{cid}/samples.png"} <= set(doc["paths"])
    assert doc["components"]["schemas"]["CampaignSpec"]["examples"]


# ------------------------------------------------------------------ who may call what


@pytest.mark.parametrize(("header", "says"), [
    ({}, "Authorization: Bearer"), (auth("not-a-token"), "unknown token"), ({"Authorization": "Basic abc"}, "Bearer"),
])
def test_no_or_an_unknown_token_is_401(api: InProcessApi, header: dict[str, str], says: str) -> None:
    r = api.client.get("/attacks", headers=header)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized" and says in r.json()["error"]["message"]


def test_the_admin_manages_users_and_may_not_submit(api: InProcessApi) -> None:
    assert api.client.post("/users", json={"name": "x"}, headers=auth(api.token)).json()["error"]["code"] == "admin_only"
    r = api.submit(campaign_spec(), token=ADMIN)
    assert r.status_code == 403 and r.json()["error"]["code"] == "users_only"
    assert api.client.post("/users", json={"name": "bad/name"}, headers=auth(ADMIN)).status_code == 422
    me = api.get("/users/me").json()
    assert me["admin"] is False and me["name"] == "tests"
    assert api.get("/users/me", token=ADMIN).json() == {"user_id": None, "name": "admin", "admin": True}
    assert [u["name"] for u in api.get("/users", token=ADMIN).json()] == ["tests"]


def test_a_revoked_user_is_403_and_its_queued_campaigns_are_cancelled(api: InProcessApi) -> None:
    uid, token = api.create_user("leaving")
    cid = api.submit(campaign_spec(), token=token).json()["id"]
    r = api.post(f"/users/{uid}/revoke", token=ADMIN)
    assert r.status_code == 200 and r.json()["revoked"]
    refused = api.get("/attacks", token=token)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "revoked"
    record = api.get(f"/attacks/{cid}", token=ADMIN).json()
    assert record["state"] == "cancelled" and record["error"]["code"] == "user_revoked", record
    assert api.post("/users/u_000000000000/revoke", token=ADMIN).json()["error"]["code"] == "unknown_user"


# ------------------------------------------------------------------ submit, list, cancel


def test_a_submission_is_queued_with_its_key_sealed(api: InProcessApi) -> None:
    r = api.submit(campaign_spec(name="first", target={"api_key": "very-secret-oracle-key"}))
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    assert r.headers["Location"] == f"/attacks/{cid}" == r.json()["location"]
    assert api.svc.queue.job_ids == [cid]
    record = api.get(f"/attacks/{cid}").json()
    assert record["state"] == "queued" and record["name"] == "first"
    assert "very-secret-oracle-key" not in str(record)
    for key in api.svc.connection.keys("*"):
        if api.svc.connection.type(key) == b"string":
            assert b"very-secret-oracle-key" not in (api.svc.connection.get(key) or b""), key


def test_users_see_only_their_own_campaigns_and_the_admin_all(api: InProcessApi) -> None:
    _, other = api.create_user("other")
    mine = [api.submit(campaign_spec()).json()["id"] for _ in range(3)]
    theirs = api.submit(campaign_spec(), token=other).json()["id"]
    page = api.get("/attacks", params={"limit": 2}).json()
    assert [c["id"] for c in page["items"]] == mine[:0:-1] and page["total"] == 3 and page["next_offset"] == 2
    rest = api.get("/attacks", params={"offset": 2, "limit": 2}).json()
    assert [c["id"] for c in rest["items"]] == [mine[0]] and rest["next_offset"] is None
    assert api.get(f"/attacks/{theirs}").status_code == 404  # another's campaign reads as unknown
    assert api.post(f"/attacks/{theirs}/cancel").status_code == 404
    everyone = api.get("/attacks", token=ADMIN).json()
    assert everyone["total"] == 4 and {c["id"] for c in everyone["items"]} == {*mine, theirs}


def test_cancel_ends_a_queued_campaign_at_once_and_once(api: InProcessApi) -> None:
    cid = api.submit(campaign_spec()).json()["id"]
    kept = api.submit(campaign_spec()).json()["id"]
    r = api.client.delete(f"/attacks/{cid}", headers=auth(api.token))
    assert r.status_code == 202 and r.json()["state"] == CampaignState.cancelled.value
    assert api.svc.queue.job_ids == [kept]  # its job left the queue
    again = api.post(f"/attacks/{cid}/cancel")
    assert again.status_code == 409 and again.json()["error"] == {
        "code": "already_finished", "message": f"campaign {cid} already cancelled", "details": {"state": "cancelled"}}
    assert api.get("/attacks", params={"state": "queued"}).json()["total"] == 1
    assert [c["id"] for c in api.get("/attacks", params={"state": "cancelled"}).json()["items"]] == [cid]


def test_redis_unreachable_is_503_with_retry_after(api: InProcessApi) -> None:
    api.server.connected = False
    r = api.get("/attacks")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.json()["error"]["code"] == "redis_unavailable"


def test_an_allowlisted_target_other_than_the_default(make_api: Any) -> None:
    api = make_api(oracle_allowlist=["http://oracle.internal:9000"])
    assert api.submit(campaign_spec()).status_code == 403  # DEFAULT_ORACLE is no longer admitted
    assert api.submit(campaign_spec(target={"oracle_url": "http://oracle.internal:9000"})).status_code == 202
    assert DEFAULT_ORACLE not in api.settings.oracle_allowlist
