"""Static checks of the dashboards and alert rules: every PromQL expression parses, rules are complete."""

from __future__ import annotations

import json

import promql_parser
import pytest

from tests.deploy.queries import (
    DASHBOARDS,
    RULE_FILES,
    all_queries,
    dashboard_queries,
    rules,
    substitute_grafana_variables,
)


def test_the_deployment_ships_dashboards_and_rules() -> None:
    assert {p.name for p in DASHBOARDS} == {"bbrange-oracle.json", "bbrange-attacker.json"}
    assert [p.name for p in RULE_FILES] == ["bbrange.rules.yml"]


@pytest.mark.parametrize("query", all_queries(), ids=lambda q: q.where)
def test_every_query_parses_and_names_its_metrics(query) -> None:
    assert query.selectors(), f"{query.where}: no metric selector in {query.expr}"


def test_grafana_variables_are_substituted_like_grafana_does() -> None:
    expr = 'sum(rate(x_total{model=~"$model",client=~"${client:regex}"}[$__rate_interval])) / [[n]]'
    assert substitute_grafana_variables(expr, {"model": ".*", "client": "a|b", "n": "2"}) == \
        'sum(rate(x_total{model=~".*",client=~"a|b"}[1m])) / 2'
    with pytest.raises(KeyError):
        substitute_grafana_variables("x{a=~\"$nope\"}", {})


def test_a_broken_query_is_caught() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m]))")
    with pytest.raises(ValueError):  # function argument types are checked too
        promql_parser.parse("rate(x_total)")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path) -> None:
    d = json.loads(path.read_text())
    assert d["uid"] == path.stem and d["title"].startswith("blackbox-range / ")
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in d["panels"]:
        if panel["type"] == "row":
            continue
        # Every panel queries the chosen data source, so the JSON works with compose's provisioned Prometheus
        # and with a cluster's Grafana alike.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    assert dashboard_queries(path)


def test_the_oracle_dashboard_covers_what_operators_asked_for() -> None:
    exprs = " ".join(q.source for q in dashboard_queries(next(p for p in DASHBOARDS if p.stem == "bbrange-oracle")))
    for needle in ("sum by (client, model) (rate(bbrange_oracle_inputs_answered_total",
                   'refusals_total{reason="budget_exhausted"', "sum by (reason) (rate(bbrange_oracle_refusals_total",
                   "histogram_quantile(0.99, sum by (le) (rate(bbrange_oracle_request_seconds_bucket"):
        assert needle in exprs, needle


def test_the_attacker_dashboard_covers_what_operators_asked_for() -> None:
    exprs = " ".join(q.source for q in dashboard_queries(next(p for p in DASHBOARDS if p.stem == "bbrange-attacker")))
    for needle in ("max by (state) (bbrange_attack_campaigns)",
                   "sum by (phase) (rate(bbrange_attack_oracle_queries_total", "bbrange_attack_transfer_rate_sum"):
        assert needle in exprs, needle


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_alert_rules_are_complete(path) -> None:
    names = []
    for rule in rules(path):
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
        names.append(rule["alert"])
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])
    assert len(names) == len(set(names)), "alert names must be unique"
