"""A target model's page: every finished campaign against it in one table and two plots, the model's
robustness at a glance (success at each perturbation size, beside noise) and what it cost in labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bbrange.attacker.campaigns.report import figures
from bbrange.attacker.campaigns.report.pages import page
from bbrange.attacker.campaigns.report.section import Section
from bbrange.attacker.campaigns.report.templating import percent, render, trusted_svg
from bbrange.attacker.campaigns.spec.attacks.registry import crafting_label, stored_crafting
from bbrange.attacker.campaigns.storage.records import CampaignRecord

PLOTTED = 8  # campaigns drawn in the plots (the newest); the table lists all of them
PALETTE = ("#c0392b", "#2471a3", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#2c3e50", "#b7950b")


@dataclass(frozen=True)
class ModelCampaigns:
    model: str
    oracle_url: str | None  # only campaigns against this endpoint, when given
    records: list[CampaignRecord]  # finished, newest first
    api_url: str
    truncated: bool = False  # more campaigns exist than were read


def attack_label(spec: dict[str, Any]) -> str:
    return crafting_label(spec.get("crafting", {}))


def sizes_of(record: CampaignRecord) -> list[tuple[float, float | None, float | None]]:
    """(ε, transfer, noise) at each size a campaign measured (`results.by_eps`, or its one size); empty for an
    attack without a size."""
    r = record.results
    if r is None:
        return []
    if r.by_eps:
        return [(s.eps, s.transfer_rate, s.noise_rate) for s in r.by_eps]
    crafting = stored_crafting(record.spec.get("crafting", {}))
    sizes = crafting.sizes() if crafting is not None else []
    return [(sizes[0], r.transfer_rate, r.noise_rate)] if r.transfer_rate is not None and len(sizes) == 1 else []


def _row(record: CampaignRecord, api_url: str) -> dict[str, Any]:
    r, sub = record.results, record.spec.get("substitute", {})
    sizes = sizes_of(record)
    if sizes:
        success = [f"ε={e:g}: {percent(t, 1)} (noise {percent(n, 1)})" for e, t, n in sorted(sizes)]
    else:
        success = [f"{percent(r.transfer_rate if r else None, 1)} (noise {percent(r.noise_rate if r else None, 1)})"]
    return {"id": record.id, "short": record.id[:8], "name": record.name, "state": record.state.value,
            "created": record.created_at, "attack": attack_label(record.spec),
            "substitute": f"{'+'.join(sub.get('presets') or [sub.get('preset', '?')])} ρ={sub.get('rho', '?')} "
                          f"λ={sub.get('lam', '?')}",
            "labelling": record.queries.labelling, "total": record.queries.total,
            "agreement": r.oracle_agreement if r else None, "clean": r.clean_accuracy if r else None,
            "success": success, "report": f"{api_url}/attacks/{record.id}/report",
            "flagged": r.flagged_after_queries if r else None}


def _robustness_plot(records: list[CampaignRecord]) -> str | None:
    series = []
    # One axis, L∞ sizes: an L2 campaign's ε (a gradient attack's norm l2) is listed in the table, not plotted here.
    linf = [r for r in records if sizes_of(r) and getattr(stored_crafting(r.spec.get("crafting", {})), "norm", "linf")
            == "linf"]
    for i, record in enumerate(linf[:PLOTTED]):
        sizes = sorted(sizes_of(record))
        colour = PALETTE[i % len(PALETTE)]
        hit = [(e, t) for e, t, _ in sizes if t is not None]
        series.append(figures.Curve(f"{record.id[:8]} transfer", [e for e, _ in hit], [t for _, t in hit], colour))
        noise = [(e, n) for e, _, n in sizes if n is not None]
        if noise:
            series.append(figures.Curve(f"{record.id[:8]} noise", [e for e, _ in noise], [n for _, n in noise],
                                        colour, dashed=True))
    if not series:
        return None
    return figures.curves(series, "ε (L∞ size of the perturbation)", "misclassified by the oracle")


def _labels_plot(records: list[CampaignRecord]) -> str | None:
    points = []
    for i, record in enumerate(records[:PLOTTED * 2]):
        r = record.results
        if r is None or r.transfer_rate is None:
            continue
        points.append((f"{record.id[:8]}", record.queries.labelling, r.transfer_rate,
                       PALETTE[i % len(PALETTE)]))
    if not points:
        return None
    return figures.scatter_by_queries(points, "labelling queries the substitute cost", "transfer (headline size)")


def render_model_report(campaigns: ModelCampaigns) -> str:
    records = campaigns.records
    rows = [_row(r, campaigns.api_url) for r in records]
    robustness, labels = _robustness_plot(records), _labels_plot(records)
    body = render("model.html", campaigns=campaigns, rows=rows, plotted=PLOTTED,
                  robustness=trusted_svg(robustness) if robustness else None,
                  labels=trusted_svg(labels) if labels else None)
    where = f" at {campaigns.oracle_url}" if campaigns.oracle_url else ""
    return page(f"Model {campaigns.model}: how robust is it?",
                f"{len(records)} finished campaign{'s' if len(records) != 1 else ''} against {campaigns.model}{where}",
                [Section("campaigns", "Every finished campaign", body)])
