"""The typed clients and the spec builder, in-process: what they send, how they read answers and refusals.
(The conftests' helpers run them against the real services in every campaign test.)"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bbrange.attacker.campaigns.client import AttackerClient, CampaignTimeout, spec_json
from bbrange.attacker.campaigns.spec.builder import bbrange_target, campaign_spec, fgsm, jsma
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.storage.records import utcnow
from bbrange.shared.oracle_admin import OracleAdmin
from bbrange.shared.service_client import ServiceError


def record(state: str, phase: str = "queued") -> dict[str, Any]:
    return {"id": "c1", "state": state, "phase": phase, "created_at": utcnow().isoformat(), "spec": {}}


def test_the_built_specs_are_valid_campaign_specs() -> None:
    target = bbrange_target("http://127.0.0.1:8000", "key")
    for spec in (campaign_spec(target), campaign_spec(target, s0=30, rho=2, crafting=fgsm([0.3, 0.1])),
                 campaign_spec(target, crafting=jsma(), substitute={"reservoir": True}, query_budget=100, name="x")):
        parsed = CampaignSpec.model_validate_json(json.dumps(spec))
        assert parsed.target.api_key is not None and parsed.target.api_key.get_secret_value() == "key"
    merged = campaign_spec(target, substitute={"tau": 2}, evaluation={"size": 7})
    assert merged["substitute"]["rho"] == 6 and merged["substitute"]["tau"] == 2
    assert merged["evaluation"] == {"split": "test", "size": 7}
    assert campaign_spec(target, crafting=fgsm(0.2))["crafting"] == {"method": "fgsm", "eps": 0.2}


def test_a_campaign_spec_is_sent_with_its_key() -> None:
    spec = CampaignSpec.model_validate_json(json.dumps(campaign_spec(bbrange_target("http://o:8000", "secret"))))
    assert spec_json(spec)["target"]["api_key"] == "secret"  # shown back masked, but sent whole


def test_a_refusal_raises_the_apis_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": {"code": "target_not_allowed", "message": "no", "details": {"a": 1}}})

    with AttackerClient("http://api", "t", transport=httpx.MockTransport(refuse)) as client, \
            pytest.raises(ServiceError) as e:
        client.submit({"target": {}})
    assert (e.value.status, e.value.code, e.value.error.details) == (422, "target_not_allowed", {"a": 1})


def test_an_answer_that_is_not_the_error_shape_is_kept_as_text() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(502, text="<html>bad gateway</html>"))
    with OracleAdmin("http://oracle", "t", transport=transport) as admin, pytest.raises(ServiceError) as e:
        admin.clients()
    assert e.value.status == 502 and "bad gateway" in e.value.message


def test_follow_reports_progress_until_a_final_state() -> None:
    answers = iter([record("queued"), record("running", "substitute"), record("succeeded", "done")])
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=next(answers)))
    seen: list[str] = []
    with AttackerClient("http://api", "t", transport=transport) as client:
        final = client.follow("c1", on_progress=lambda r: seen.append(r.phase.value), poll_s=0)
    assert final.state.value == "succeeded" and seen == ["queued", "substitute", "done"]


def test_waiting_gives_up_with_the_last_record() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=record("running", "crafting")))
    with AttackerClient("http://api", "t", transport=transport) as client, pytest.raises(CampaignTimeout) as e:
        client.follow("c1", timeout_s=0.2, poll_s=0.05)
    assert e.value.record is not None and e.value.record.phase.value == "crafting"


def test_an_outage_is_waited_out_only_when_asked() -> None:
    answers = iter([httpx.Response(503, json={"error": {"code": "unavailable", "message": "redis"}}),
                    httpx.Response(200, json=record("succeeded", "done"))])
    with AttackerClient("http://api", "t", transport=httpx.MockTransport(lambda _: next(answers))) as client:
        assert client.wait_for("c1", lambda r: r.state.finished, 5, 0, through_outages=True).state.value == "succeeded"
    down = httpx.MockTransport(lambda _: httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}}))
    with AttackerClient("http://api", "t", transport=down) as client, pytest.raises(ServiceError):
        client.follow("c1", poll_s=0)


def test_the_oracle_admin_client_reads_typed_answers() -> None:
    view = {"client_id": "c_1", "name": "n", "budget": 10, "used": 3, "remaining": 7, "rate_per_minute": None,
            "revoked": False, "created_at": "now"}

    def oracle(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer admin"
        if request.url.path == "/v1/admin/clients" and request.method == "POST":
            assert json.loads(request.content) == {"name": "n", "budget": 10, "rate_per_minute": None}
            return httpx.Response(201, json={"client": view, "api_key": "k"})
        return httpx.Response(200, json={**view, "used": 4})

    with OracleAdmin("http://oracle", "admin", transport=httpx.MockTransport(oracle)) as admin:
        created = admin.create_client("n", 10)
        assert (created.api_key, created.client.client_id) == ("k", "c_1")
        assert admin.client("c_1").used == 4 and admin.top_up("c_1", 5).remaining == 7
