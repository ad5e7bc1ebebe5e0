"""Reports for people: a campaign's page (its plots, its samples, the command that reruns it) and a target
model's page (every finished campaign against it). HTML, self-contained; the same access rules as every
campaign route: a user sees its own campaigns, the admin all of them, anyone else a 404."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from bbrange.attacker.campaigns.api.dependencies import CallerDep, Campaign, Services
from bbrange.attacker.campaigns.report import CampaignView, ModelCampaigns, render_campaign_report, render_model_report
from bbrange.attacker.campaigns.storage.campaign_store import CampaignStore
from bbrange.attacker.campaigns.storage.records import CampaignRecord, CampaignState
from bbrange.shared.http_errors import ApiError, error_responses

router = APIRouter(tags=["reports"])

HTML: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": {}}, "description": "A self-contained HTML page"}}
MOST_CAMPAIGNS_READ = 1000  # per finished state, newest first: what a model's page reads at most
PAGE = 100
FINISHED = (CampaignState.succeeded, CampaignState.failed, CampaignState.cancelled)


# The pages need nothing from anywhere: a browser that honours this runs no script and fetches nothing, whatever
# a page might carry (names, class names and model cards come from users and endpoints; all are escaped anyway).
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})


def _api_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/attacks/{cid}/report", response_class=HTMLResponse, responses={**HTML, **error_responses(401, 403, 404, 503)})
def campaign_report(record: Campaign, svc: Services, request: Request) -> HTMLResponse:
    """The campaign's report: what was attacked and the command that reruns it, the substitute per ρ, queries by
    phase, transfer beside the noise baseline (against ε when it crafted several), whether the oracle flagged
    it, and its samples. A failed or cancelled campaign's report shows what it had."""
    samples = svc.samples.load(record.id) if record.samples_available else None
    return _page(render_campaign_report(CampaignView.of(record, samples, _api_url(request))))


def finished_against(store: CampaignStore, model: str, oracle_url: str | None, owner: str | None
                     ) -> tuple[list[CampaignRecord], bool]:
    """The finished campaigns against `model` (at `oracle_url` when given), newest first, and whether there were
    more than were read."""
    found: list[CampaignRecord] = []
    truncated = False
    for state in FINISHED:
        for offset in range(0, MOST_CAMPAIGNS_READ, PAGE):
            records, total = store.page(state, offset, PAGE, owner=owner)
            found += [r for r in records if r.spec.get("target", {}).get("model") == model
                      and (oracle_url is None or r.spec.get("target", {}).get("oracle_url") == oracle_url)]
            truncated |= total > MOST_CAMPAIGNS_READ
            if offset + PAGE >= total:
                break
    return sorted(found, key=lambda r: r.created_at, reverse=True), truncated


@router.get("/models/{model}/report", response_class=HTMLResponse, responses={**HTML, **error_responses(401, 403, 404, 422, 503)})
def model_report(
    model: Annotated[str, Path(min_length=1, max_length=200, description="The model's name at its endpoint")],
    svc: Services,
    who: CallerDep,
    request: Request,
    oracle_url: Annotated[str | None, Query(max_length=2000, description="Only campaigns against this endpoint")] = None,
) -> HTMLResponse:
    """Every finished campaign against one model (the caller's; the admin's: everyone's) in one table and two
    plots: success at each perturbation size beside noise, and transfer against the labels it cost."""
    records, truncated = finished_against(svc.store, model, oracle_url, None if who.admin else who.user_id)
    if not records:
        raise ApiError(404, "no_campaigns", f"no finished campaign of yours against model {model[:64]!r}",
                       {"model": model[:200]})
    return _page(render_model_report(ModelCampaigns(model, oracle_url, records, _api_url(request), truncated)))
