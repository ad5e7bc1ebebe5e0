"""The attacker's HTTP API: submit, follow, cancel campaigns, and fetch their adversarial samples.

Nothing heavy runs here: campaigns go to the RQ queue and run in worker processes. The API only reads
and writes campaign state in Redis and reads sample files from the shared data directory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, AsyncIterator

import redis
from fastapi import FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from bbrange import __version__
from bbrange.attacker.campaign_models import CampaignRecord, CampaignState, utcnow
from bbrange.attacker.campaign_spec import CampaignSpec, UploadedInitialSet
from bbrange.attacker.campaign_store import CampaignStore
from bbrange.attacker.jobs import drop_queued_job, enqueue_campaign, queue_for
from bbrange.attacker.metrics import exposition_registry
from bbrange.attacker.sample_images import grid_png, png_bytes
from bbrange.attacker.sample_store import SampleSet, SampleStore
from bbrange.attacker.settings import AttackerSettings
from bbrange.attacker.target_policy import OracleAllowlist, TargetNotAllowed
from bbrange.shared.http_errors import ApiError, error_response, install_error_handlers
from bbrange.shared.schemas import ErrorBody

log = logging.getLogger(__name__)

NPZ_MEDIA_TYPE = "application/x-npz"


class CampaignAccepted(BaseModel):
    id: str
    state: CampaignState
    location: str = Field(description="Where to follow the campaign")


class CampaignPage(BaseModel):
    items: list[CampaignRecord]
    total: int
    offset: int
    limit: int
    next_offset: int | None


class SourceImage(BaseModel):
    dataset: str
    split: str
    index: int = Field(description="Index of the clean image in that dataset split")


class Sample(BaseModel):
    index: int = Field(description="Position of the sample in this campaign (0-based)")
    source: SourceImage
    adversarial_png: str = Field(description="The adversarial image as an 8-bit PNG, base64 (the exact floats are "
                                             "in samples.npz)")
    true_label: int
    oracle_label_before: int = Field(description="The oracle's label of the clean image")
    oracle_label_after: int = Field(description="The oracle's label of the adversarial image")
    target: int | None = Field(description="The JSMA target class; null for untargeted FGSM")
    success: bool = Field(description="FGSM: the oracle's label differs from the true label; JSMA: it is the target")
    l0: float = Field(description="Fraction of features changed")
    l2: float
    linf: float


class SamplePage(BaseModel):
    campaign_id: str
    items: list[Sample]
    total: int
    offset: int
    limit: int
    next_offset: int | None


def _errors(*codes: int) -> dict[int | str, dict]:
    return {c: {"model": ErrorBody} for c in codes}


def create_app(settings: AttackerSettings | None = None) -> FastAPI:
    settings = settings or AttackerSettings()
    connection = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    store = CampaignStore(connection, settings.redis_prefix)
    samples = SampleStore(settings.data_dir)
    allowlist = OracleAllowlist(settings.oracle_allowlist)
    queue = queue_for(connection, settings)
    registry = exposition_registry(store)

    async def reap_forever() -> None:
        # A campaign whose worker vanished must not read "running" forever, even if nobody asks about it.
        while True:
            await asyncio.sleep(max(settings.lease_ttl_s / 2, 0.5))
            try:
                await run_in_threadpool(store.reap_lost)
            except RedisError as e:
                log.warning("cannot reap lost campaigns: %s", e)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reaper = asyncio.create_task(reap_forever())
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            connection.close()

    app = FastAPI(
        title="blackbox-range attacker",
        version=__version__,
        description="Black-box attack campaigns (Papernot et al.) against a remote label-only oracle: a substitute "
                    "trained by Jacobian-based augmentation, FGSM or JSMA crafted on it, transfer measured on the "
                    "oracle. Campaigns run in worker processes; this API queues, follows and cancels them.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    @app.exception_handler(RedisError)
    async def _redis_down(_: Request, exc: RedisError) -> Response:
        log.warning("redis unavailable: %s", exc)
        return error_response(503, "redis_unavailable", "the campaign store is unreachable; retry later",
                              headers={"Retry-After": "5"})

    def found(cid: str) -> CampaignRecord:
        record = store.get(cid)
        if record is None:
            raise ApiError(404, "unknown_campaign", f"no campaign {cid!r}")
        return record

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses=_errors(503))
    def readyz() -> dict[str, str]:
        connection.ping()
        return {"status": "ready"}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
    def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/attacks", status_code=202, response_model=CampaignAccepted, tags=["campaigns"],
              responses=_errors(403, 422, 503))
    def submit(spec: CampaignSpec, response: Response) -> CampaignAccepted:
        """Queue a campaign. Answers 202 at once with its id; follow it at the Location header."""
        try:
            allowlist.check(spec.target.oracle_url)
        except TargetNotAllowed as e:
            raise ApiError(403, "target_not_allowed", str(e), {"oracle_url": spec.target.oracle_url}) from None
        cid = uuid.uuid4().hex
        if isinstance(spec.initial_set, UploadedInitialSet):
            samples.save_upload(cid, spec.initial_set.array())
        full = spec.model_dump(mode="json")
        full["target"]["api_key"] = spec.target.api_key.get_secret_value()
        record = CampaignRecord(id=cid, name=spec.name, state=CampaignState.queued, created_at=utcnow(),
                                spec=spec.public())
        store.create(record, json.dumps(full))
        enqueue_campaign(queue, cid, settings)
        location = f"/attacks/{cid}"
        response.headers["Location"] = location
        return CampaignAccepted(id=cid, state=record.state, location=location)

    @app.get("/attacks", response_model=CampaignPage, tags=["campaigns"], responses=_errors(422))
    def list_campaigns(
        state: Annotated[CampaignState | None, Query(description="Only campaigns in this state")] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> CampaignPage:
        """Campaigns, newest first."""
        store.reap_lost()
        items, total = store.list(state, offset, limit)
        nxt = offset + limit if offset + limit < total else None
        return CampaignPage(items=items, total=total, offset=offset, limit=limit, next_offset=nxt)

    @app.get("/attacks/{cid}", response_model=CampaignRecord, tags=["campaigns"], responses=_errors(404))
    def get_campaign(cid: str) -> CampaignRecord:
        """State, phase, progress, per-epoch metrics, queries by phase, results, and the error if it failed."""
        store.reap_lost()
        return found(cid)

    def cancel(cid: str) -> CampaignRecord:
        record = found(cid)
        if record.state.finished:
            raise ApiError(409, "already_finished", f"campaign {cid} already {record.state.value}",
                           {"state": record.state.value})
        record = store.request_cancel(cid) or record
        if record.state is CampaignState.cancelled:
            drop_queued_job(connection, cid)
        return record

    @app.post("/attacks/{cid}/cancel", status_code=202, response_model=CampaignRecord, tags=["campaigns"],
              responses=_errors(404, 409))
    def cancel_campaign(cid: str) -> CampaignRecord:
        """Cancel: a queued campaign at once; a running one at its next oracle request or substitute epoch,
        keeping what it has computed."""
        return cancel(cid)

    @app.delete("/attacks/{cid}", status_code=202, response_model=CampaignRecord, tags=["campaigns"],
                responses=_errors(404, 409))
    def delete_campaign(cid: str) -> CampaignRecord:
        """The same as POST /attacks/{id}/cancel (the record and samples are kept)."""
        return cancel(cid)

    def samples_of(cid: str) -> tuple[CampaignRecord, SampleSet]:
        record = found(cid)
        loaded = samples.load(cid)
        if loaded is None:
            reason = ("it has not finished yet" if not record.state.finished
                      else f"it {record.state.value} before any adversarial example was labelled")
            raise ApiError(409, "samples_not_ready", f"campaign {cid} has no samples: {reason}",
                           {"state": record.state.value})
        return record, loaded

    @app.get("/attacks/{cid}/samples", response_model=SamplePage, tags=["samples"], responses=_errors(404, 409, 422))
    def list_samples(
        cid: str,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> SamplePage:
        """Adversarial samples with the oracle's labels before and after, and their distortion."""
        record, s = samples_of(cid)
        dataset = record.spec.get("dataset", "")
        split = record.spec.get("evaluation", {}).get("split", "test")
        items = [
            Sample(
                index=i, source=SourceImage(dataset=dataset, split=split, index=int(s.index[i])),
                adversarial_png=base64.b64encode(png_bytes(s.x_adv[i])).decode(),
                true_label=int(s.y_true[i]), oracle_label_before=int(s.label_before[i]),
                oracle_label_after=int(s.label_after[i]), target=int(s.target[i]) if s.target[i] >= 0 else None,
                success=bool(s.success[i]), l0=float(s.l0[i]), l2=float(s.l2[i]), linf=float(s.linf[i]),
            )
            for i in range(offset, min(offset + limit, len(s)))
        ]
        nxt = offset + limit if offset + limit < len(s) else None
        return SamplePage(campaign_id=cid, items=items, total=len(s), offset=offset, limit=limit, next_offset=nxt)

    @app.get("/attacks/{cid}/samples.npz", tags=["samples"], response_class=FileResponse,
             responses={200: {"content": {NPZ_MEDIA_TYPE: {}}, "description": "NumPy .npz: index, x, x_adv, y_true, "
                              "label_before, label_after, target, success, l0, l2, linf"}, **_errors(404, 409)})
    def download_samples(cid: str) -> FileResponse:
        """The exact float32 arrays and the labels, as an uncompressed .npz (numpy.load reads it)."""
        samples_of(cid)
        return FileResponse(samples.samples_path(cid), media_type=NPZ_MEDIA_TYPE, filename=f"{cid}-samples.npz")

    @app.get("/attacks/{cid}/samples.png", tags=["samples"], response_class=FileResponse,
             responses={200: {"content": {"image/png": {}}, "description": "Originals above their adversarial "
                              "examples, captioned with the oracle's labels"}, **_errors(404, 409)})
    def samples_picture(cid: str) -> FileResponse:
        """A grid of originals and adversarial examples with the oracle's labels (as the thesis's Figure 1.1)."""
        record, s = samples_of(cid)
        path = samples.grid_path(cid)
        if not path.exists():  # written by the worker; rebuilt here if it was lost
            samples.save_grid(cid, grid_png(s, f"campaign {cid[:8]}"))
        return FileResponse(path, media_type="image/png")

    return app
