"""What a submission may ask of the attacker API, in-process (tests/unit/attacker_inprocess.py, on fakeredis):
uploads bounded by their decoded size and decoded once, no base64 kept in Redis, a spec bounded as stored,
per-user caps on active and kept campaigns, and the responses the API really gives documented in its OpenAPI."""

from __future__ import annotations

import base64
import io
import time
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.storage import user_data
from bbrange.attacker.campaigns.storage.samples import SampleStore
from bbrange.attacker.campaigns.worker.plan import campaign_inputs
from tests.specs import DEFAULT_ORACLE as ORACLE
from tests.specs import campaign_spec as spec_with
from tests.unit.attacker_inprocess import ADMIN, InProcessApi, auth

Api = InProcessApi


def b64(write: Callable[[io.BytesIO], Any]) -> str:
    buf = io.BytesIO()
    write(buf)
    return base64.b64encode(buf.getvalue()).decode()


def npz_b64(**arrays: np.ndarray) -> str:
    return b64(lambda f: np.savez_compressed(f, **arrays))


def eval_upload(n: int = 60, **extra: np.ndarray) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)
    return {"size": 30, "source": {"kind": "upload", "npz_base64": npz_b64(x=x, y=np.arange(n) % 10, **extra)}}


# ------------------------------------------------------------------ item 7: uploads bounded, decoded once


def test_a_zip_bomb_is_refused_by_its_declared_size(make_api: Callable[..., Api]) -> None:
    api = make_api(max_upload_bytes=1024 * 1024)
    bomb = {"kind": "upload", "npz_base64": npz_b64(x=np.zeros((4000, 1, 28, 28), np.uint8), y=np.zeros(4000, int))}
    assert len(bomb["npz_base64"]) < 20_000  # 3 MB of zeros deflate to a few kB
    r = api.submit(spec_with(evaluation={"size": 10, "source": bomb}))
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "upload_too_large" and "BBRANGE_ATTACK_MAX_UPLOAD_BYTES" in error["message"]
    assert error["details"]["limit"] == 1024 * 1024 and error["details"]["decoded_bytes"] > 3_000_000
    assert api.get("/attacks").json()["total"] == 0


def test_a_zip_bomb_over_the_default_limit_is_refused_before_it_is_inflated(api: Api) -> None:
    n = 90_000  # 70 MB of zeros, over the default 64 MiB, deflated to about 100 kB
    bomb = npz_b64(x=np.zeros((n, 1, 28, 28), np.uint8), y=np.zeros(n, np.int64))
    assert len(bomb) < 200_000
    started = time.monotonic()
    r = api.submit(spec_with(evaluation={"size": 60, "source": {"kind": "upload", "npz_base64": bomb}}))
    elapsed = time.monotonic() - started
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "upload_too_large" and error["details"]["limit"] == 64 * 1024 * 1024
    assert error["details"]["decoded_bytes"] > n * 784
    assert api.total() == 0
    assert elapsed < 5, elapsed  # judged from the zip directory, not by inflating 70 MB


def _huge_header_npz() -> str:
    """An .npz whose x.npy header declares 10^9 x 3 x 224 x 224 float32 (600 TB) in a few hundred bytes."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**9, 3, 224, 224)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", member.getvalue())
        labels = io.BytesIO()
        np.save(labels, np.zeros(3, np.int64))
        z.writestr("y.npy", labels.getvalue())
    return base64.b64encode(buf.getvalue()).decode()


def test_an_npz_header_declaring_a_huge_shape_is_a_4xx_with_the_reason(make_api: Callable[..., Api]) -> None:
    api = make_api()
    r = api.submit(spec_with(evaluation={"size": 10, "source": {"kind": "upload", "npz_base64": _huge_header_npz()}}))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert "evaluation.source.npz_base64" in error["message"] and "declares shape (1000000000, 3, 224, 224)" in \
        error["message"], error["message"]


def test_uploads_are_decoded_once_and_kept_as_arrays_not_base64_in_redis(
        make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch) -> None:
    api = make_api()
    x0 = np.random.default_rng(1).integers(0, 256, (20, 1, 28, 28), dtype=np.uint8)
    s0 = {"kind": "upload", "npy_base64": b64(lambda f: np.save(f, x0))}
    evaluation = eval_upload()
    opened = {"zip": 0, "npy": 0}
    real_zip, real_npy = zipfile.ZipFile, user_data.decode_npy

    class CountingZip(real_zip):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kw: Any) -> None:
            opened["zip"] += 1
            super().__init__(*args, **kw)

    def counting_npy(raw: bytes) -> np.ndarray:
        opened["npy"] += 1
        return real_npy(raw)

    monkeypatch.setattr(zipfile, "ZipFile", CountingZip)
    monkeypatch.setattr(user_data, "decode_npy", counting_npy)
    r = api.submit(spec_with(initial_set=s0, evaluation=evaluation))
    monkeypatch.undo()
    assert r.status_code == 202, r.text
    assert opened == {"zip": 1, "npy": 1}

    cid = r.json()["id"]
    shown = api.get(f"/attacks/{cid}").json()["spec"]
    assert shown["initial_set"] == {"kind": "upload", "shape": [20, 1, 28, 28]}
    assert shown["evaluation"]["source"] == {"kind": "upload", "shape": [60, 1, 28, 28]}
    fragments = [s0["npy_base64"][200:260], evaluation["source"]["npz_base64"][200:260]]
    for key in api.svc.connection.keys("*"):
        if api.svc.connection.type(key) == b"string":
            value = api.svc.connection.get(key) or b""
            assert not any(f.encode() in value for f in fragments), key

    # What the worker reads back: the arrays as sent, in the stored spec's place.
    stored = SampleStore(api.settings.data_dir).load_uploads(cid)
    assert stored.x0 is not None and np.array_equal(stored.x0, x0)
    spec = CampaignSpec.model_validate(shown | {"target": {"oracle_url": ORACLE, "model": "mnist", "api_key": "k"}})
    inputs = campaign_inputs(spec, stored, (1, 28, 28), 10)
    x_sent = np.load(io.BytesIO(base64.b64decode(evaluation["source"]["npz_base64"])))["x"]
    assert np.array_equal(inputs.x_eval, x_sent[:30].astype(np.float32) / 255)
    assert inputs.y_eval.tolist() == [i % 10 for i in range(30)]

    api.cancel(cid)  # an ended campaign's uploads go
    assert not (api.settings.data_dir / cid).exists()


@pytest.mark.parametrize(("source", "message"), [
    ({"kind": "upload", "shape": [60, 1, 28, 28]}, "send the images as npz_base64"),
    ({"kind": "upload", "npz_base64": npz_b64(x=np.zeros((4, 1, 28, 28), np.float32))}, "labels 'y'"),
    ({"kind": "upload", "npz_base64": npz_b64(x=np.full((4, 1, 28, 28), 2, np.float32), y=np.zeros(4, int))},
     "inputs must lie in [0, 1]"),
    ({"kind": "upload", "npz_base64": base64.b64encode(b"PK\x03\x04 not a zip").decode()}, "not a readable .npz"),
])
def test_unusable_evaluation_uploads_are_422(make_api: Callable[..., Api], source: dict[str, Any],
                                             message: str) -> None:
    r = make_api().submit(spec_with(evaluation={"size": 2, "source": source}))
    assert r.status_code == 422 and message in r.json()["error"]["message"], r.text


# ------------------------------------------------------------------ item 11: bounded specs, per-user caps


def test_a_spec_larger_than_the_stored_limit_is_refused(make_api: Callable[..., Api]) -> None:
    api = make_api()
    names = [f"class-{i:05d}-" + "x" * 40 for i in range(10_000)]  # about 0.5 MB of class names, each within its own bound
    tiny = np.zeros((5, 1, 4, 4), np.uint8)
    spec = spec_with(dataset="custom", domain={"input_shape": [1, 4, 4], "num_classes": 10_000, "class_names": names},
                     initial_set={"kind": "upload", "npy_base64": b64(lambda f: np.save(f, tiny))},
                     evaluation={"size": 5, "source": {"kind": "upload", "npz_base64": npz_b64(x=tiny, y=np.arange(5))}})
    r = api.submit(spec)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "spec_too_large" and "BBRANGE_ATTACK_MAX_SPEC_BYTES" in error["message"]
    assert error["details"]["limit"] == 64 * 1024 and error["details"]["spec_bytes"] > 500_000
    assert api.get("/attacks").json()["total"] == 0


def test_active_campaigns_per_user_are_capped(make_api: Callable[..., Api]) -> None:
    api = make_api(max_active_campaigns_per_user=2)
    first, _ = (api.submit(spec_with()).json()["id"] for _ in range(2))
    r = api.submit(spec_with())
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "too_many_active_campaigns" and error["details"] == {"active": 2, "limit": 2}
    assert "BBRANGE_ATTACK_MAX_ACTIVE_CAMPAIGNS_PER_USER" in error["message"]
    api.cancel(first)
    assert api.submit(spec_with()).status_code == 202
    assert api.get("/attacks").json()["total"] == 3


def test_the_oldest_finished_campaigns_go_beyond_the_kept_limit(make_api: Callable[..., Api]) -> None:
    api = make_api(max_campaigns_per_user=2, max_active_campaigns_per_user=5)
    ids = []
    for _ in range(2):
        ids.append(api.submit(spec_with()).json()["id"])
        api.cancel(ids[-1])
    leftover = api.settings.data_dir / ids[0] / "samples.npz"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"samples of a finished campaign")
    ids.append(api.submit(spec_with()).json()["id"])
    page = api.get("/attacks").json()
    assert [c["id"] for c in page["items"]] == [ids[2], ids[1]] and page["total"] == 2
    assert api.get(f"/attacks/{ids[0]}").status_code == 404
    assert not leftover.parent.exists()
    # Active campaigns are never deleted: the finished one goes, the four queued ones stay.
    more = [api.submit(spec_with()).json()["id"] for _ in range(3)]
    assert {c["id"] for c in api.get("/attacks").json()["items"]} == {ids[2], *more}


# ------------------------------------------------------------------ item 13c: the API's answers, documented


def test_405_names_every_method_of_the_path(make_api: Callable[..., Api]) -> None:
    api = make_api()
    for path, methods in [("/attacks", {"GET", "POST"}), (f"/attacks/{uuid.uuid4().hex}", {"GET", "DELETE"}),
                          ("/healthz", {"GET"})]:
        r = api.client.options(path)
        assert r.status_code == 405, (path, r.text)
        assert set(r.headers["Allow"].split(", ")) == methods, (path, r.headers)
        assert set(r.json()["error"]["details"]["allow"]) == methods


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path template, a concrete path) of every operation the document lists."""
    cid = uuid.uuid4().hex
    return [(method.upper(), template, template.replace("{cid}", cid).replace("{uid}", "u_000000000000"))
            for template, item in doc["paths"].items() for method in item]


def test_every_status_the_api_answers_is_documented(make_api: Callable[..., Api]) -> None:
    api = make_api(max_request_bytes=4096)
    doc = api.client.get("/openapi.json").json()
    seen: list[tuple[str, str, int]] = []
    for method, template, path in _operations(doc):
        seen.append((method, template, api.client.request(method, path).status_code))  # no token
        if method == "POST":
            token = ADMIN if template.startswith("/users") else api.token
            too_large = api.client.request(method, path, content=b"x" * 5000, headers=auth(token))
            not_utf8 = api.client.request(method, path, content=b'{"name": "\xff"}',
                                          headers={**auth(token), "Content-Type": "application/json"})
            seen += [(method, template, too_large.status_code), (method, template, not_utf8.status_code)]
    api.server.connected = False  # Redis unreachable: every route that needs it answers 503
    for method, template, path in _operations(doc):
        token = ADMIN if template.startswith("/users") and template != "/users/me" else api.token
        seen.append((method, template, api.client.request(method, path, headers=auth(token)).status_code))
    assert {400, 401, 413, 503} <= {status for *_, status in seen}, seen
    documented = {(m.upper(), t): {int(c) for c in op["responses"]} for t, item in doc["paths"].items()
                  for m, op in item.items()}
    undocumented = sorted({(m, t, s) for m, t, s in seen if s >= 400 and s not in documented[(m, t)]})
    assert not undocumented, undocumented
