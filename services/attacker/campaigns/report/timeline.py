"""The campaign's queries in the order it sent them, rebuilt from its record: the agreement labels, the
labelling of each substitute epoch, then the adversarial examples and their noise baseline (size by size
when it crafted several)."""

from __future__ import annotations

from bbrange.attacker.campaigns.report.figures import Span
from bbrange.attacker.campaigns.storage.records import CampaignRecord


def query_spans(record: CampaignRecord) -> list[Span]:
    q = record.queries
    spans = [Span("agreement", "agreement labels of the evaluation images", q.agreement)]
    labelled = 0
    for e in record.epochs:
        spans.append(Span("labelling", f"labelling for ρ={e.rho}", e.labelling_queries - labelled))
        labelled = e.labelling_queries
    if q.labelling > labelled:  # an epoch that was labelling when the campaign stopped
        spans.append(Span("labelling", f"labelling for ρ={len(record.epochs)} (unfinished)", q.labelling - labelled))
    spans.append(Span("attack", "the query attack's search", q.attack))
    sizes = (record.results.by_eps if record.results is not None else None) or []
    if sizes and sum(s.samples + s.noise_samples for s in sizes) == q.evaluation + q.baseline:
        for s in sizes:
            spans.append(Span("evaluation", f"adversarial examples at ε={s.eps:g}", s.samples))
            spans.append(Span("baseline", f"noise baseline at ε={s.eps:g}", s.noise_samples))
    else:
        spans.append(Span("evaluation", "adversarial examples", q.evaluation))
        spans.append(Span("baseline", "noise baseline", q.baseline))
    return [s for s in spans if s.queries > 0]


def span_at(spans: list[Span], queries: int) -> Span | None:
    """The stretch of the timeline in which the query after the first `queries` ones was sent."""
    start = 0
    for s in spans:
        if queries < start + s.queries:
            return s
        start += s.queries
    return spans[-1] if spans else None
