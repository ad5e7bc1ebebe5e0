"""The report's pages drawn in-process from records a worker would leave: which sections a campaign gets,
that every plot carries data, that the page is one file, and that what users typed is escaped."""

from __future__ import annotations

import re

from bbrange.attacker.campaigns.report import CampaignView, ModelCampaigns, render_campaign_report, render_model_report
from bbrange.attacker.campaigns.report.timeline import query_spans, span_at
from bbrange.attacker.campaigns.storage.records import CampaignError, CampaignRecord, CampaignState, QueryCounts, utcnow
from tests.report.records import SPEC, cancelled, samples, succeeded

API = "http://127.0.0.1:8100"


def sections_of(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', html)


def plots_of(html: str) -> list[str]:
    return re.findall(r'<figure class="plot">(.*?)</figure>', html, flags=re.S)


def assert_self_contained(html: str) -> None:
    style = html[html.index("<style>"):html.index("</style>")]
    assert "font:" in style and "&#34;" not in style and '"DejaVu Sans"' in style  # the page's own CSS, as written
    assert "<script" not in html
    assert not re.search(r'\ssrc="(?!data:)', html)  # every image is inline
    assert not re.search(r'\shref="(?!data:|#|http://127.0.0.1:8100/)', html)  # links: inline, or to the API
    assert "@import" not in html and "url(http" not in html


def test_a_transfer_campaign_with_several_sizes_has_every_section() -> None:
    html = render_campaign_report(CampaignView.of(succeeded(), samples(), API))
    assert sections_of(html) == ["attacked", "substitute", "queries", "transfer", "sizes", "blue-side", "samples"]
    plots = plots_of(html)
    assert len(plots) == 5  # agreement per ρ, queries by phase, transfer beside noise, transfer against ε, timeline
    for plot in plots:
        assert plot.lstrip().startswith("<svg") and re.search(r'id="data-[a-z]+-\d+"', plot), plot[:200]
    assert_self_contained(html)
    assert html.count('src="data:image/png;base64,') == 20  # ten originals over ten adversarial examples
    assert f"{API}/attacks/{'a' * 32}/samples.npz" in html
    assert f"bbrange attack run --api {API} --spec campaign-aaaaaaaa.json" in html
    assert "never said it flagged" in html
    # the ε table lists the headline first, as the spec gave it
    sizes = html[html.index('<section id="sizes">'):html.index('<section id="blue-side">')]
    assert sizes.index('<td class="num">0.3</td>') < sizes.index('<td class="num">0.1</td>')


def test_a_cancelled_campaign_shows_what_it_had() -> None:
    html = render_campaign_report(CampaignView.of(cancelled(), None, API))
    assert sections_of(html) == ["attacked", "outcome", "substitute", "queries", "blue-side"]
    assert "cancelled on request [phase: substitute]" in html
    assert "labelling for ρ=2 (unfinished)" in html  # 75 labelled, the two finished epochs account for 60
    assert "stopped &lt;early&gt;" in html and "stopped <early>" not in html  # the name is escaped
    assert_self_contained(html)


def test_the_blue_side_marks_where_the_oracle_flagged_the_campaign() -> None:
    record = succeeded(flagged="prada; queries=95", flagged_after_queries=95)
    html = render_campaign_report(CampaignView.of(record, None, API))
    assert "The oracle flagged this campaign" in html and "after\n95 queries, during the labelling for ρ=1" in html
    timeline = plots_of(html)[-1]
    assert re.search(r'id="data-flag-\d+"', timeline) and "flagged after 95 queries" in timeline


def test_a_blocked_campaign_says_the_oracle_blocked_it() -> None:
    record = cancelled()
    record.state = CampaignState.failed
    record.error = CampaignError(code="suspected_extraction", message="blocked")
    assert record.results is not None
    record.results.flagged, record.results.flagged_after_queries = "prada; queries=70", 70
    assert "and then\nblocked its key" in render_campaign_report(CampaignView.of(record, None, API))


def test_query_attack_sections_appear_only_with_their_data() -> None:
    view = CampaignView.of(succeeded(), None, API)
    assert "distortion" not in sections_of(render_campaign_report(view))
    view.results["distortion_by_queries"] = {"norm": "l2", "queries": [10, 100, 1000], "median": [9.0, 5.0, 2.5],
                                             "q1": [7.0, 4.0, 2.0], "q3": [11.0, 6.5, 3.0]}
    view.results["success_by_size"] = {"norm": "l2", "points": [{"size": 1.0, "success_rate": 0.2, "noise_rate": 0.0},
                                                                {"size": 3.0, "success_rate": 0.9, "noise_rate": 0.05}]}
    html = render_campaign_report(view)
    assert sections_of(html)[-3:] == ["distortion", "success-by-size", "blue-side"]
    distortion = html[html.index('<section id="distortion">'):]
    assert re.search(r'id="data-band-\d+"', distortion)  # the interquartile range is drawn
    view.results["distortion_by_queries_other"] = {"norm": "linf", "queries": [10, 100, 1000],
                                                   "median": [0.9, 0.5, 0.25], "q1": [0.7, 0.4, 0.2],
                                                   "q3": [1.0, 0.6, 0.3]}
    view.results["success_by_size_other"] = {"norm": "linf", "points": [{"size": 0.1, "success_rate": 0.3,
                                                                         "noise_rate": 0.01}]}
    html = render_campaign_report(view)
    assert sections_of(html)[-3:] == ["distortion", "success-by-size", "blue-side"]
    section = html[html.index('<section id="distortion">'):html.index('<section id="success-by-size">')]
    assert "median l2" in section and "median linf" in section and len(plots_of(section)) == 2
    section = html[html.index('<section id="success-by-size">'):html.index('<section id="blue-side">')]
    assert "linf size" in section and len(plots_of(section)) == 2
    del view.results["distortion_by_queries_other"]
    view.results["distortion_by_queries"] = {"queries": [1, 2], "median": [1.0]}  # malformed: left out
    assert "distortion" not in sections_of(render_campaign_report(view))


def test_the_timeline_follows_the_order_queries_were_sent() -> None:
    spans = query_spans(succeeded())
    assert [(s.phase, s.queries) for s in spans] == [("agreement", 60), ("labelling", 30), ("labelling", 30),
                                                     ("labelling", 60), ("evaluation", 60), ("baseline", 60),
                                                     ("evaluation", 60), ("baseline", 60)]
    assert span_at(spans, 0).label.startswith("agreement")
    assert span_at(spans, 60).label == "labelling for ρ=0"
    assert span_at(spans, 250).label == "noise baseline at ε=0.3"
    record = succeeded()
    record.queries = QueryCounts(agreement=60, labelling=120, evaluation=50, total=230)  # sizes cut short
    assert [s.label for s in query_spans(record)][-1] == "adversarial examples"


def test_the_model_page_has_every_campaign_and_its_robustness() -> None:
    records = [succeeded("c" * 32), cancelled("d" * 32)]
    html = render_model_report(ModelCampaigns("mnist", None, records, API))
    assert f'href="{API}/attacks/{"c" * 32}/report"' in html and f'href="{API}/attacks/{"d" * 32}/report"' in html
    assert "ε=0.1: 20.0% (noise 5.0%)<br>ε=0.3: 50.0% (noise 10.0%)" in html
    plots = plots_of(html)
    assert len(plots) == 2 and all(re.search(r'id="data-[a-z]+-\d+"', p) for p in plots)
    assert_self_contained(html)


def test_a_queued_campaign_and_a_jsma_campaign() -> None:
    queued = CampaignRecord(id="e" * 32, state=CampaignState.queued, created_at=utcnow(), owner="u_1", spec=SPEC)
    html = render_campaign_report(CampaignView.of(queued, None, API))
    assert sections_of(html) == ["attacked", "outcome"] and "this report shows what it has so far" in html
    assert "the campaign never connected" in html
    jsma = succeeded("f" * 32, by_eps=None, target_rate=0.3)
    jsma.spec = {**SPEC, "crafting": {"method": "jsma", "theta": 1.0, "upsilon": 0.145, "target": "random"}}
    html = render_campaign_report(CampaignView.of(jsma, None, API))
    assert "sizes" not in sections_of(html) and "θ = 1.0, Υ = 14.5%" in html and "oracle answered the target" in html
    model = render_model_report(ModelCampaigns("mnist", "http://127.0.0.1:8000", [jsma], API))
    assert "JSMA θ=+1 Υ=14.5%" in model and len(plots_of(model)) == 1  # no FGSM size to draw, the labels plot stays


def test_the_hybrid_curve_with_its_labelling_amortised_is_drawn_after_the_others() -> None:
    view = CampaignView.of(succeeded(), None, API)
    curve = {"norm": "l2", "queries": [10, 100], "median": [9.0, 5.0], "q1": [7.0, 4.0], "q3": [11.0, 6.5]}
    view.results["distortion_by_queries"] = curve
    view.results["distortion_by_queries_amortised"] = {**curve, "queries": [1010.5, 1100.5]}
    view.results["amortised_labelling_queries_per_image"] = 1000.5
    html = render_campaign_report(view)
    section = html[html.index('<section id="distortion">'):html.index('<section id="blue-side">')]
    assert len(plots_of(section)) == 2 and "labelling amortised" in section
    assert "labelling queries, 1,000.5 (all of them ÷ the images attacked)" in section and ">1,010<" in section
