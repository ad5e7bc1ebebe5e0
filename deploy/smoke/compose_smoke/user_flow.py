"""What a user does once the stack is up, through the published ports and the project's own typed clients:
an oracle key from the admin API, a user token, a small campaign followed to the end, its samples, and
Prometheus's counters checked against what the campaign and the oracle's ledger report."""

from __future__ import annotations

import httpx

from bbrange.attacker.campaigns.client import AttackerClient
from bbrange.attacker.campaigns.spec.builder import bbrange_target, campaign_spec
from bbrange.attacker.campaigns.storage.records import CampaignState
from bbrange.shared.oracle_admin import OracleAdmin
from bbrange.shared.service_client import ServiceError
from compose_smoke.commands import SmokeFailure, wait_until
from compose_smoke.context import Context

# Inside the compose network the attacker's workers reach the oracle by its service name.
ORACLE_IN_COMPOSE = "http://oracle:8000"


def prom_value(base: str, query: str) -> float | None:
    r = httpx.get(f"{base}/api/v1/query", params={"query": query}, timeout=30)
    body = r.json()
    if r.status_code != 200 or body.get("status") != "success":
        return None
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def user_flow(ctx: Context) -> None:
    try:
        _user_flow(ctx)
    except ServiceError as e:  # the table shows the service's own error
        raise SmokeFailure(f"{e}; details {e.error.details}") from None


def _user_flow(ctx: Context) -> None:
    oracle, attacker, prometheus = ctx.url("oracle"), ctx.url("attacker"), ctx.url("prometheus")
    step = ctx.table.step
    with step("oracle key (admin API)") as note, OracleAdmin(oracle, ctx.admin_token, timeout_s=30) as admin:
        models = httpx.get(f"{oracle}/v1/models", timeout=30)
        if models.status_code != 200 or "mnist" not in models.text:
            raise SmokeFailure(f"GET /v1/models: {models.status_code} {models.text[:300]}")
        created = admin.create_client("compose-smoke", 5000)
        client_id, api_key = created.client.client_id, created.api_key
        served = ", ".join(m.get("name", "?") for m in models.json().get("models", []))
        note["detail"] = f"client {client_id}, budget 5000; models: {served}"
    with step("user token (attacker admin API)") as note, AttackerClient(attacker, ctx.attack_admin_token) as admin:
        user = admin.create_user("compose-smoke")
        note["detail"] = f"user {user.user.id}"
    with AttackerClient(attacker, user.token) as client:
        with step("campaign submitted") as note:
            # The campaign a user would try first, made small: |S0| = 50, two substitute epochs, FGSM on 100 images.
            spec = campaign_spec(bbrange_target(ORACLE_IN_COMPOSE, api_key), s0=50, rho=2, lam=-0.1, train_epochs=3,
                                 eval_size=100, name="compose-smoke", query_budget=2000)
            cid = client.submit(spec).id
            note["detail"] = f"{cid}: |S0| 50, rho 2, FGSM on 100 test images"
        with step("campaign finished") as note:
            record = client.follow(cid, timeout_s=ctx.args.campaign_timeout, poll_s=2)
            if record.state != CampaignState.succeeded or record.results is None:
                raise SmokeFailure(f"campaign {record.state.value}: {record.error}")
            q, r = record.queries, record.results
            note["detail"] = (f"queries {q.labelling}+{q.agreement}+{q.evaluation}+{q.baseline}={q.total}, "
                              f"agreement {r.oracle_agreement}, transfer {r.transfer_rate}, worker {record.worker}")
        with step("samples read") as note:
            page = client.samples(cid, limit=10)
            if not page.items or page.total != r.samples:
                raise SmokeFailure(f"samples: {page.total} listed, {len(page.items)} on the page; the "
                                   f"campaign reports {r.samples}")
            note["detail"] = f"{page.total} samples (= results.samples), first page {len(page.items)}"
    with step("Prometheus agrees") as note:
        with OracleAdmin(oracle, ctx.admin_token, timeout_s=30) as admin:
            used = admin.client(client_id).used
        if used != q.total:
            raise SmokeFailure(f"the oracle charged {used} inputs; the campaign reports {q.total}")
        want = {
            f'sum(bbrange_oracle_inputs_answered_total{{client="{client_id}"}})': q.total,
            'sum(bbrange_attack_oracle_queries_total{phase="labelling"})': q.labelling,
            'sum(bbrange_attack_oracle_queries_total{phase="agreement"})': q.agreement,
            'sum(bbrange_attack_oracle_queries_total{phase="evaluation"})': q.evaluation,
            'sum(bbrange_attack_oracle_queries_total{phase="baseline"})': q.baseline,
            'sum(bbrange_attack_campaigns_finished_total{state="succeeded"})': 1,
            'sum(bbrange_attack_transfer_rate_count{method="fgsm"})': 1,
        }
        got: dict[str, float | None] = {}

        def agrees() -> bool:
            for query in want:
                got[query] = prom_value(prometheus, query)
            return all((g := got[k]) is not None and abs(g - v) < 1e-9 for k, v in want.items())

        try:
            wait_until("Prometheus's counters equal the campaign's", agrees, 120, 3, tolerated=(httpx.HTTPError,))
        except SmokeFailure as e:
            raise SmokeFailure(f"{e}: " + ", ".join(f"{k} = {got.get(k)} (want {v})" for k, v in want.items())) from None
        targets = httpx.get(f"{prometheus}/api/v1/targets", params={"state": "active"}, timeout=30).json()
        active = targets["data"]["activeTargets"]
        up = [t for t in active if t["health"] == "up"]
        note["detail"] = (f"oracle inputs {q.total} = charged = campaign total; attacker queries by phase "
                          f"equal; {len(up)}/{len(active)} targets up")
