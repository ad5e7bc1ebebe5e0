"""A campaign's adversarial samples: paginated JSON, the exact arrays, and a picture."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from bbrange.attacker.campaigns.api.dependencies import Campaign, Services
from bbrange.attacker.campaigns.api.responses import Sample, SamplePage, SourceImage
from bbrange.attacker.campaigns.report.pictures import grid_png, png_bytes
from bbrange.attacker.campaigns.spec.attacks.registry import crafting_label
from bbrange.attacker.campaigns.storage.records import CampaignRecord
from bbrange.attacker.campaigns.storage.samples import SampleSet
from bbrange.shared.http_errors import ApiError, error_responses

router = APIRouter(prefix="/attacks/{cid}", tags=["samples"])

NPZ_MEDIA_TYPE = "application/x-npz"


def _samples_of(record: CampaignRecord, svc: Services) -> SampleSet:
    loaded = svc.samples.load(record.id)
    if loaded is None:
        reason = ("it has not finished yet" if not record.state.finished
                  else f"it {record.state.value} before any adversarial example was labelled")
        raise ApiError(409, "samples_not_ready", f"campaign {record.id} has no samples: {reason}",
                       {"state": record.state.value})
    return loaded


@router.get("/samples", response_model=SamplePage, responses=error_responses(401, 403, 404, 409, 422, 503))
def list_samples(
    record: Campaign,
    svc: Services,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SamplePage:
    """Adversarial samples with the oracle's labels before and after, and their distortion."""
    s = _samples_of(record, svc)
    dataset = record.spec.get("dataset", "")
    split = record.spec.get("evaluation", {}).get("split", "test")
    items = [
        Sample(
            index=i, source=SourceImage(dataset=dataset, split=split, index=int(s.index[i])),
            adversarial_png=base64.b64encode(png_bytes(s.x_adv[i])).decode(),
            true_label=int(s.y_true[i]), oracle_label_before=int(s.label_before[i]),
            oracle_label_after=int(s.label_after[i]) if s.label_after[i] >= 0 else None,
            target=int(s.target[i]) if s.target[i] >= 0 else None,
            success=bool(s.success[i]), l0=float(s.l0[i]), l2=float(s.l2[i]), linf=float(s.linf[i]),
            queries=int(s.queries[i]) if s.queries is not None else None,
        )
        for i in range(offset, min(offset + limit, len(s)))
    ]
    nxt = offset + limit if offset + limit < len(s) else None
    crafting = record.spec.get("crafting", {})
    return SamplePage(campaign_id=record.id, method=crafting.get("method"), crafting=crafting_label(crafting),
                      items=items, total=len(s), offset=offset, limit=limit, next_offset=nxt)


@router.get("/samples.npz", response_class=FileResponse,
            responses={200: {"content": {NPZ_MEDIA_TYPE: {}}, "description": "NumPy .npz: index, x, x_adv, y_true, "
                             "label_before, label_after, target, success, l0, l2, linf (and queries, for a query attack)"},
                       **error_responses(401, 403, 404, 409, 503)})
def download_samples(record: Campaign, svc: Services) -> FileResponse:
    """The exact float32 arrays and the labels, as an uncompressed .npz (numpy.load reads it)."""
    _samples_of(record, svc)
    return FileResponse(svc.samples.samples_path(record.id), media_type=NPZ_MEDIA_TYPE,
                        filename=f"{record.id}-samples.npz")


@router.get("/samples.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "Originals above their adversarial "
                             "examples, captioned with the oracle's labels"}, **error_responses(401, 403, 404, 409, 503)})
def samples_picture(record: Campaign, svc: Services) -> FileResponse:
    """A grid of originals and adversarial examples with the oracle's labels (as the thesis's Figure 1.1)."""
    s = _samples_of(record, svc)
    path = svc.samples.grid_path(record.id)
    if not path.exists():  # written by the worker; rebuilt here if it was lost
        svc.samples.save_grid(record.id, grid_png(s, f"campaign {record.id[:8]}"))
    return FileResponse(path, media_type="image/png")
