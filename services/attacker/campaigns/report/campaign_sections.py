"""The sections every campaign has: what was attacked and how to run it again, how it ended, the blue
side (did the oracle's detector see it), and its samples."""

from __future__ import annotations

import json

from bbrange.attacker.campaigns.report import figures
from bbrange.attacker.campaigns.report.pictures import pick_for_grid, png_bytes
from bbrange.attacker.campaigns.report.section import Section
from bbrange.attacker.campaigns.report.templating import data_uri, render, trusted_svg
from bbrange.attacker.campaigns.report.timeline import query_spans, span_at
from bbrange.attacker.campaigns.report.view import CampaignView

MASKED = "**********"  # how the API shows a secret back (target_spec.py)


def attacked_section(view: CampaignView) -> Section:
    spec = view.record.spec
    target = spec.get("target", {})
    spec_json = json.dumps(spec, indent=2)
    file_name = f"campaign-{view.short_id}.json"
    return Section("attacked", "What was attacked",
                   render("sections/attacked.html", view=view, target=target, card=view.record.target_model,
                          spec_json=spec_json, spec_uri=data_uri(spec_json.encode(), "application/json"),
                          file_name=file_name, masked=MASKED in spec_json))


def outcome_section(view: CampaignView) -> Section | None:
    record = view.record
    if record.error is None and record.state.finished:
        return None
    return Section("outcome", "How it ended" if record.state.finished else "Not finished yet",
                   render("sections/outcome.html", record=record))


def blue_side_section(view: CampaignView) -> Section | None:
    record = view.record
    spans = query_spans(record)
    if not spans:
        return None
    flagged_at = view.results.get("flagged_after_queries")
    flagged = view.results.get("flagged")
    during = span_at(spans, flagged_at) if flagged_at is not None else None
    label = f"flagged after {flagged_at:,} queries" if flagged_at is not None else ""
    plot = figures.query_timeline(spans, flagged_at, label)
    blocked = record.error is not None and record.error.code == "suspected_extraction"
    keys = [k.model_dump() for k in record.queries.keys or []]
    return Section("blue-side", "The blue side: did the oracle notice?",
                   render("sections/blue_side.html", flagged=flagged, flagged_at=flagged_at, during=during,
                          blocked=blocked, spans=spans, plot=trusted_svg(plot), keys=keys,
                          bad=view.results.get("distortion_after_bad_queries")))


def samples_section(view: CampaignView) -> Section | None:
    s = view.samples
    if s is None or len(s) == 0:
        return None
    tiles = [{
        "index": int(s.index[i]), "original": data_uri(png_bytes(s.x[i]), "image/png"),
        "adversarial": data_uri(png_bytes(s.x_adv[i]), "image/png"), "true": view.class_name(int(s.y_true[i])),
        "before": view.class_name(int(s.label_before[i])), "after": view.class_name(int(s.label_after[i])),
        "target": view.class_name(int(s.target[i])) if s.target[i] >= 0 else None, "success": bool(s.success[i]),
        "linf": float(s.linf[i]), "l0": float(s.l0[i]),
    } for i in pick_for_grid(s, 10).tolist()]
    return Section("samples", "Samples: originals over their adversarial examples",
                   render("sections/samples.html", view=view, tiles=tiles, total=len(s),
                          succeeded=int(s.success.sum())))
