"""A submitted spec's uploads, decoded once by the API: bounded by their decoded size before anything is
inflated, checked for shape and range, and handed on as arrays (kept on the data directory until the campaign
ends) while the spec that is stored names each upload by its shape only, never by its base64."""

from __future__ import annotations

from typing import Any

from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.spec.data import UploadedImages, UploadedInitialSet
from bbrange.attacker.campaigns.storage.user_data import (
    Uploads,
    UploadTooLarge,
    UserDataError,
    check_range,
    decode_npy_upload,
    decode_npz_upload,
)
from bbrange.shared.http_errors import ApiError

MAX_UPLOADED_S0 = 10_000


def _given(data: str | None, where: str) -> str:
    if data is None:
        raise UserDataError(f"send the images as {where.rsplit('.', 1)[-1]}; `shape` is what the service shows "
                            "back once it has them")
    return data


def decode_uploads(spec: CampaignSpec, max_bytes: int) -> Uploads:
    """The spec's uploads as arrays; ApiError 413 (upload_too_large) or 422 (invalid_request) with the reason."""
    s0, source = spec.initial_set, spec.evaluation.source
    where = ""
    try:
        x0 = x_eval = y_eval = None
        if isinstance(s0, UploadedInitialSet):
            where = "initial_set.npy_base64"
            x0 = decode_npy_upload(_given(s0.npy_base64, where), max_bytes)
            if len(x0) > MAX_UPLOADED_S0:
                raise UserDataError(f"the uploaded initial set has {len(x0):,} images; at most {MAX_UPLOADED_S0:,} "
                                    "are accepted")
            check_range(x0, spec.value_range, "the uploaded images")
        if isinstance(source, UploadedImages):
            where = "evaluation.source.npz_base64"
            x_eval, y_eval = decode_npz_upload(_given(source.npz_base64, where), max_bytes)
            check_range(x_eval, spec.value_range, "the uploaded .npz")
    except UploadTooLarge as e:
        raise ApiError(413, "upload_too_large", f"{where}: {e}",
                       {"field": where, "decoded_bytes": e.size, "limit": e.limit}) from None
    except UserDataError as e:
        raise ApiError(422, "invalid_request", f"{where}: {e}", {"field": where}) from None
    return Uploads(x0=x0, x_eval=x_eval, y_eval=y_eval)


def without_upload_data(spec: CampaignSpec, uploads: Uploads) -> CampaignSpec:
    """The spec as stored: each upload replaced by the shape of what was decoded."""
    update: dict[str, Any] = {}
    if uploads.x0 is not None:
        update["initial_set"] = UploadedInitialSet(kind="upload", shape=list(uploads.x0.shape))
    if uploads.x_eval is not None:
        source = UploadedImages(kind="upload", shape=list(uploads.x_eval.shape))
        update["evaluation"] = spec.evaluation.model_copy(update={"source": source})
    return spec.model_copy(update=update)
