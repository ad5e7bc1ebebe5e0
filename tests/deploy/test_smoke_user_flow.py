"""The compose smoke's user step (deploy/smoke/compose_smoke/user_flow.py) against a stand-in of the stack's
published ports: it goes through the typed clients, sends the spec it means to, and checks what it says it
checks. (The real run needs root and Docker: `make compose-smoke`.)"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

import httpx
import pytest

from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.storage.records import utcnow
from tests.deploy.rendering import REPO

QUERIES = {"labelling": 200, "agreement": 100, "evaluation": 100, "baseline": 100, "total": 500}


def stack(sent: dict[str, Any], charged: int) -> httpx.MockTransport:
    """The oracle, the attacker API and Prometheus behind their published ports, as a user sees them."""
    view = {"client_id": "c_1", "name": "compose-smoke", "budget": 5000, "used": charged, "remaining": 0,
            "rate_per_minute": None, "revoked": False, "created_at": "now"}
    record = {"id": "c1", "state": "succeeded", "phase": "done", "progress": 1.0, "created_at": utcnow().isoformat(),
              "spec": {}, "queries": QUERIES, "results": {"samples": 3}, "worker": "w1", "samples_available": True}
    sample = {"index": 0, "source": {"dataset": "mnist", "split": "test", "index": 50}, "adversarial_png": "",
              "true_label": 1, "oracle_label_before": 1, "oracle_label_after": 2, "target": None, "success": True,
              "l0": 0.5, "l2": 1.0, "linf": 0.3}
    prometheus = {"labelling": 200, "agreement": 100, "evaluation": 100, "baseline": 100}

    def answer(request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/v1/models":
            return httpx.Response(200, json={"models": [{"name": "mnist"}]})
        if path == "/v1/admin/clients" and method == "POST":
            return httpx.Response(201, json={"client": view, "api_key": "bbk_key"})
        if path == "/v1/admin/clients/c_1":
            return httpx.Response(200, json=view)
        if path == "/users":
            return httpx.Response(201, json={"user": {"id": "u_1", "name": "compose-smoke",
                                                      "created_at": utcnow().isoformat()}, "token": "bbu_token"})
        if path == "/attacks":
            sent["spec"] = json.loads(request.content)
            return httpx.Response(202, json={"id": "c1", "state": "queued", "location": "/attacks/c1"})
        if path == "/attacks/c1":
            return httpx.Response(200, json=record)
        if path == "/attacks/c1/samples":
            return httpx.Response(200, json={"campaign_id": "c1", "items": [sample], "total": 3, "offset": 0,
                                             "limit": 10, "next_offset": None})
        if path == "/api/v1/query":
            query = request.url.params["query"]
            phase = re.search(r'phase="(\w+)"', query)
            value = prometheus[phase.group(1)] if phase else 500 if "inputs_answered" in query else 1
            return httpx.Response(200, json={"status": "success", "data": {"result": [{"value": [0, str(value)]}]}})
        if path == "/api/v1/targets":
            return httpx.Response(200, json={"data": {"activeTargets": [{"health": "up"}, {"health": "up"}]}})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": path}})

    return httpx.MockTransport(answer)


def run_user_flow(monkeypatch: pytest.MonkeyPatch, transport: httpx.MockTransport) -> Any:
    monkeypatch.syspath_prepend(str(REPO / "deploy" / "smoke"))
    original = httpx.Client.__init__

    def through_the_stand_in(self: httpx.Client, *args: Any, **kwargs: Any) -> None:
        kwargs["transport"] = transport
        original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", through_the_stand_in)
    from compose_smoke.context import Context
    from compose_smoke.user_flow import user_flow

    ctx = Context(argparse.Namespace(cache="/nonexistent", tmp=None, images="standins", campaign_timeout=5))
    try:
        user_flow(ctx)
    finally:
        ctx.tmp.rmdir()
    return ctx


def test_the_user_step_checks_the_campaign_against_the_ledger_and_prometheus(monkeypatch) -> None:
    sent: dict[str, Any] = {}
    ctx = run_user_flow(monkeypatch, stack(sent, charged=500))
    spec = CampaignSpec.model_validate_json(json.dumps(sent["spec"]))
    assert spec.target.oracle_url == "http://oracle:8000" and spec.initial_set.size == 50
    assert spec.substitute.rho == 2 and spec.evaluation.size == 100 and spec.query_budget == 2000
    assert [(name, result) for name, _, result, _ in ctx.table.rows] == [
        ("oracle key (admin API)", "ok"), ("user token (attacker admin API)", "ok"), ("campaign submitted", "ok"),
        ("campaign finished", "ok"), ("samples read", "ok"), ("Prometheus agrees", "ok")]


def test_the_user_step_fails_when_the_oracle_charged_otherwise(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "deploy" / "smoke"))
    from compose_smoke.commands import SmokeFailure

    with pytest.raises(SmokeFailure, match="the oracle charged 499 inputs"):
        run_user_flow(monkeypatch, stack({}, charged=499))
