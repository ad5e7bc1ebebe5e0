"""Every PromQL expression the deployment ships (Grafana dashboards and Prometheus alert rules), parsed.

PromQL is parsed with `promql-parser` (PyPI; Python bindings of the Rust parser that GreptimeDB uses), which
checks syntax and function argument types offline. Grafana's variables are substituted first, as Grafana
would before sending the query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import promql_parser
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))

# Series Prometheus makes itself (not exported by a service) that the queries may use.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}
# Labels Prometheus attaches to every scraped series, beside a metric's own.
TARGET_LABELS = {"job", "instance"}

# Grafana's built-in interval variables, replaced by a representative value.
_BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
             "__interval_ms": "60000"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute_grafana_variables(expr: str, values: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in _BUILTINS:
            return _BUILTINS[name]
        if name in values:
            return values[name]
        raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")

    return _VARIABLE.sub(repl, expr)


@dataclass
class Selector:
    metric: str
    labels: set[str] = field(default_factory=set)


@dataclass
class Query:
    where: str  # file and panel / rule, for messages
    source: str  # as written
    expr: str  # as sent to Prometheus

    def parse(self) -> promql_parser.Expr:
        try:
            return promql_parser.parse(self.expr)
        except ValueError as e:
            raise AssertionError(f"{self.where}: PromQL does not parse: {e}\n  {self.expr}") from e

    def selectors(self) -> list[Selector]:
        found: list[Selector] = []

        def visit(node: object) -> None:
            if isinstance(node, promql_parser.VectorSelector):
                labels = {m.name for m in node.matchers.matchers} | {
                    m.name for group in node.matchers.or_matchers for m in group}
                name = node.name or next((m.value for m in node.matchers.matchers if m.name == "__name__"), None)
                assert name, f"{self.where}: a selector without a metric name: {self.expr}"
                found.append(Selector(name, labels - {"__name__"}))

        promql_parser.walk(self.parse(), visit)
        return found


def _template_values(dashboard: dict) -> dict[str, str]:
    values: dict[str, str] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var["type"] == "datasource":
            values[var["name"]] = "prometheus"
        else:  # query variables with "All" = .*, the widest value Grafana can send
            values[var["name"]] = var.get("allValue") or ".*"
    return values


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*$")


def dashboard_queries(path: Path) -> list[Query]:
    dashboard = json.loads(path.read_text())
    values = _template_values(dashboard)
    queries: list[Query] = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                where = f"{path.name} panel {panel.get('title')!r} ref {target.get('refId')}"
                queries.append(Query(where, target["expr"], substitute_grafana_variables(target["expr"], values)))
    for var in dashboard.get("templating", {}).get("list", []):
        if var["type"] != "query":
            continue
        text = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = _LABEL_VALUES.match(text)
        assert m and m.group("selector"), f"{path.name} variable {var['name']}: use label_values(<selector>, label)"
        queries.append(Query(f"{path.name} variable {var['name']}", text,
                             substitute_grafana_variables(m.group("selector"), values)))
    return queries


def rules(path: Path) -> Iterator[dict]:
    for group in yaml.safe_load(path.read_text())["groups"]:
        yield from group["rules"]


def rule_queries(path: Path) -> list[Query]:
    return [Query(f"{path.name} rule {r.get('alert') or r.get('record')}", r["expr"], r["expr"]) for r in rules(path)]


def all_queries() -> list[Query]:
    return [q for d in DASHBOARDS for q in dashboard_queries(d)] + [q for f in RULE_FILES for q in rule_queries(f)]
