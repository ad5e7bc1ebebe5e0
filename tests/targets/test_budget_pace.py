"""A foreign endpoint enforces no budget or pace of ours: the campaign keeps its own, exactly, and the
dashboards' counters show both (client-side pacing time, campaigns stopped by whose budget)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.attacker.conftest import AttackerStack, submit, wait_final
from tests.targets.conftest import KServeServer, tiny_spec


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics", timeout=10).raise_for_status().text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_own_budget_and_pace_against_kserve(stack: AttackerStack, kserve_server: KServeServer) -> None:
    """Budget 50 at 5 inputs/s: agreement (30) and S0 (20) fit, sent at least 6 s apart (what the worker
    does in between is not pacing); the augmented points (20) do not fit and are never sent."""
    target = {"protocol": "open-inference-v2", "oracle_url": kserve_server.url, "model": "mnist",
              "max_queries_per_second": 5.0}
    before_metrics = scrape(stack.url)
    before = len(kserve_server.requests("mnist", "v2"))
    with stack.client() as api:
        record = wait_final(api, submit(api, tiny_spec(target, query_budget=50)), timeout=300)
    sent = kserve_server.requests("mnist", "v2")[before:]
    assert record["state"] == "failed" and record["error"]["code"] == "budget_exhausted", record
    q = record["queries"]
    assert (q["agreement"], q["labelling"], q["total"], q["inputs_sent"]) == (30, 20, 50, 50)
    assert [n for _, n in sent] == [30, 20]  # the endpoint saw exactly the budget
    assert sent[1][0] - sent[0][0] >= 30 / 5.0 - 0.1  # and the pace

    after = scrape(stack.url)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before_metrics.get(key, 0.0)

    assert grew("bbrange_attack_budget_stops_total", budget="campaign", phase="labelling") == 1
    assert grew("bbrange_attack_budget_stops_total", budget="oracle", phase="labelling") == 0
    # The pace cost the time it had to wait: up to 6 s, less when the campaign was slower than its pace anyway
    # (on a loaded machine the substitute's set-up between the two requests can take that long by itself).
    paced, gap = grew("bbrange_attack_client_paced_seconds_total"), sent[1][0] - sent[0][0]
    assert paced <= 6.5 and (paced >= 1.0 or gap >= 6.9), (paced, gap)
