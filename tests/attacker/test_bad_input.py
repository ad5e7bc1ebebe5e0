"""Refusals through the real API process: that an invalid spec, a disallowed target and an unknown id reach the
client as the JSON errors they are. Each refusal's logic, case by case, is tested in-process
(tests/unit/test_attacker_api_inprocess.py)."""

from __future__ import annotations

from tests.attacker.conftest import AttackerStack, small_spec

ORACLE = "http://127.0.0.1:9"


def test_refusals_reach_the_client_as_json_errors(attacker: AttackerStack) -> None:
    with attacker.client() as api:
        before = api.get("/attacks").json()["total"]
        r = api.post("/attacks", json=small_spec(ORACLE, "key", substitute={"lam": 0.0}))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
        r = api.post("/attacks", json=small_spec("http://169.254.169.254", "key"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "target_not_allowed", r.text
        r = api.delete("/attacks/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_campaign", r.text
        assert api.get("/attacks").json()["total"] == before  # nothing was queued
