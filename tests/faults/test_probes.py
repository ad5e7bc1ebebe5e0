"""Issue 10's probes, sent again as a stranger on the same network would: each one that got a 500, another
user's data, or unbounded work is now refused (real attacker API, workers, oracle and Redis)."""

from __future__ import annotations

import base64
import io
import time

import httpx
import numpy as np
import pytest
import redis

from bbrange.shared.wire import NPY_MEDIA_TYPE
from tests.attacker.conftest import AttackerStack, small_spec, submit, wait_final
from tests.conftest import OracleProcess


def _npy_b64(x: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, x)
    return base64.b64encode(buf.getvalue()).decode()


def test_finding_1_strangers_see_cancel_and_download_nothing(attacker: AttackerStack, oracle: OracleProcess) -> None:
    _, api_key = oracle.create_client(10_000, name="owner")
    with attacker.client() as owner:
        mine = submit(owner, small_spec(oracle.url, api_key, substitute={"rho": 0, "training": {"epochs": 1}},
                                        evaluation={"size": 10}))
        assert wait_final(owner, mine)["state"] == "succeeded"
        running = submit(owner, small_spec(oracle.url, api_key, substitute={"rho": 9, "training": {"epochs": 3}}))
        assert owner.get(f"/attacks/{mine}/samples.npz").status_code == 200
    _, stranger_token = attacker.create_user("stranger")
    for token in ("", "bbu_not-a-token"):  # no credential, or a made-up one
        with attacker.client(token) as anonymous:
            for method, path in [("GET", "/attacks"), ("GET", f"/attacks/{mine}"), ("POST", f"/attacks/{running}/cancel"),
                                 ("GET", f"/attacks/{mine}/samples.npz"), ("POST", "/users")]:
                r = anonymous.request(method, path)
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (method, path, r.text)
    with attacker.client(stranger_token) as stranger:
        listed = stranger.get("/attacks", params={"limit": 100}).json()
        assert listed["total"] == 0 and listed["items"] == []
        for method, path in [("GET", f"/attacks/{mine}"), ("POST", f"/attacks/{running}/cancel"),
                             ("DELETE", f"/attacks/{running}"), ("GET", f"/attacks/{mine}/samples"),
                             ("GET", f"/attacks/{mine}/samples.npz"), ("GET", f"/attacks/{mine}/samples.png")]:
            r = stranger.request(method, path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_campaign", (method, path, r.text)
        assert stranger.post("/users", json={"name": "me too"}).status_code == 403
        assert stranger.get("/users/me").json()["name"] == "stranger"
    with attacker.admin() as admin:  # the admin sees everyone's, and may cancel
        ids = [c["id"] for c in admin.get("/attacks", params={"limit": 100}).json()["items"]]
        assert {mine, running} <= set(ids)
        assert admin.post(f"/attacks/{running}/cancel").status_code == 202
    with attacker.client() as owner:
        assert wait_final(owner, running, timeout=60)["state"] == "cancelled"


def test_a_revoked_user_is_refused(attacker: AttackerStack) -> None:
    uid, token = attacker.create_user("short-lived")
    with attacker.client(token) as user:
        assert user.get("/attacks").status_code == 200
        with attacker.admin() as admin:
            assert admin.post(f"/users/{uid}/revoke").json()["revoked"] is True
            assert uid in [u["id"] for u in admin.get("/users").json()]
        r = user.get("/attacks")
        assert r.status_code == 403 and r.json()["error"]["code"] == "revoked"


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:{port}/internal/admin?token=x&", "a path is not accepted"),
    ("http://127.0.0.1:{port}/?token=x", "a query string is not accepted"),
    ("http://127.0.0.1:{port}#frag", "a fragment is not accepted"),
    ("http://user@127.0.0.1:{port}", "credentials in the URL are not accepted"),
])
def test_finding_2_an_oracle_url_is_an_origin_only(attacker: AttackerStack, oracle: OracleProcess, url: str,
                                                   why: str) -> None:
    port = oracle.url.rsplit(":", 1)[1]
    with attacker.client() as api:
        r = api.post("/attacks", json=small_spec(url.format(port=port), "k"))
    assert r.status_code == 422 and why in r.json()["error"]["message"], r.text


@pytest.mark.parametrize("port", [6379, 22, 8000])
def test_finding_2_other_ports_of_an_allowed_host_are_refused(attacker: AttackerStack, port: int) -> None:
    with attacker.client() as api:
        r = api.post("/attacks", json=small_spec(f"http://127.0.0.1:{port}", "k"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "target_not_allowed", r.text


def test_finding_2_allowlist_entries_need_a_port() -> None:
    from bbrange.attacker.campaigns.errors import TargetNotAllowed
    from bbrange.attacker.campaigns.spec.allowlist import OracleAllowlist

    with pytest.raises(TargetNotAllowed, match="needs an explicit port"):
        OracleAllowlist(["http://127.0.0.1"])
    OracleAllowlist(["http://127.0.0.1:8000"]).check("http://127.0.0.1:8000/")


def test_finding_4_and_8_the_oracle_key_is_sealed_at_rest_and_gone_at_the_end(
        attacker: AttackerStack, oracle: OracleProcess) -> None:
    _, api_key = oracle.create_client(10_000, name="sealed")
    spec = small_spec(oracle.url, api_key, substitute={"rho": 0, "training": {"epochs": 1}}, evaluation={"size": 10},
                      initial_set={"kind": "upload", "npy_base64": _npy_b64(np.zeros((5, 1, 28, 28), np.uint8))})
    store = redis.Redis.from_url(attacker.redis_url)
    with attacker.client() as api:
        cid = submit(api, spec)
        stored = store.get(f"bbrange:attack:campaign:{cid}:spec")
        upload = attacker.data_dir / cid / "initial_set.npy"
        assert stored is None or api_key.encode() not in stored  # sealed (or already finished and deleted)
        record = wait_final(api, cid)
    assert record["state"] == "succeeded", record
    assert store.get(f"bbrange:attack:campaign:{cid}:spec") is None
    assert not upload.exists(), "the upload outlived its campaign"
    for key in store.scan_iter(count=1000):
        value = store.dump(key) or b""
        assert api_key.encode() not in value, key


def test_finding_6_bodies_and_specs_are_bounded(attacker: AttackerStack, oracle: OracleProcess) -> None:
    with attacker.client() as api:
        r = api.post("/attacks", content=b"{" + b" " * (25 * 1024 * 1024) + b"}",
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        r = api.post("/attacks", json=small_spec(oracle.url, "k", initial_set={"kind": "dataset", "size": 10_000},
                                                 substitute={"rho": 12}))
        assert r.status_code == 422 and r.json()["error"]["code"] == "spec_too_large", r.text
        assert "40,960,000 points" in r.json()["error"]["message"] and "100,000" in r.json()["error"]["message"]
        r = api.post("/attacks", json=small_spec(oracle.url, "k", evaluation={"size": 100_000}))
        assert r.status_code == 422 and "20,000" in r.json()["error"]["message"], r.text
        assert api.get("/attacks").json()["total"] >= 0


def test_finding_7_ids_and_offsets(attacker: AttackerStack, oracle: OracleProcess) -> None:
    _, api_key = oracle.create_client(10_000, name="ids")
    with attacker.client() as api:
        cid = submit(api, small_spec(oracle.url, api_key, substitute={"rho": 0, "training": {"epochs": 1}},
                                     evaluation={"size": 10}))
        for path in (f"/attacks/{cid}:spec", f"/attacks/{cid}:lease", "/attacks/x" * 3, f"/attacks/{cid}:spec/samples"):
            r = api.get(path)
            assert r.status_code == 404 and r.json()["error"]["code"] in ("unknown_campaign", "not_found"), (path, r.text)
        r = api.get("/attacks", params={"offset": 9223372036854775807})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        wait_final(api, cid)
        assert api.get(f"/attacks/{cid}/samples", params={"offset": 9223372036854775807}).status_code == 422


def test_finding_7_a_huge_npy_shape_is_a_4xx(oracle: OracleProcess) -> None:
    _, key = oracle.create_client(100)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (2**20, 1, 2**10, 2**10)})
    r = httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=header.getvalue() + b"\0" * 64, timeout=30,
                   headers={"Authorization": f"Bearer {key}", "Content-Type": NPY_MEDIA_TYPE})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_npy", r.text


def test_finding_5_json_bodies_have_their_own_cap_and_leave_the_loop_free(oracle: OracleProcess) -> None:
    _, key = oracle.create_client(0)  # a client with nothing to spend
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    r = httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=b'{"inputs": [' + b"0.5," * (3 * 1024 * 1024)
                   + b"0.5]}", headers=headers, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    # A body under the JSON cap but slow to parse is parsed off the event loop: health checks stay fast meanwhile.
    row = "[" + ",".join(["0.5"] * 28) + "]"
    image = "[[" + ",".join([row] * 28) + "]]"
    body = ('{"inputs": [' + ",".join([image] * 300) + "]}").encode()
    assert len(body) < 8 * 1024 * 1024
    import threading

    done = threading.Event()
    threading.Thread(target=lambda: (httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=body,
                                                headers=headers, timeout=60), done.set()), daemon=True).start()
    worst = 0.0
    while not done.is_set():
        started = time.perf_counter()
        assert httpx.get(f"{oracle.url}/healthz", timeout=10).status_code == 200
        worst = max(worst, time.perf_counter() - started)
    assert worst < 0.5, worst


def test_finding_8_unknown_keys_are_throttled_per_address_and_known_keys_never(quick_model_dir, redis_server,
                                                                             tmp_path) -> None:
    """Issue 25, item 10: many users' campaigns leave from one address (the worker's), so a throttled address
    still gets answers for known keys; and a forwarded address is believed only from a configured proxy."""
    from bbrange.shared.wire import encode_npy
    from tests.conftest import start_oracle

    throttle = {"BBRANGE_AUTH_FAILURES_PER_MINUTE": "5"}
    direct, behind_proxy = (  # started together: their start-ups overlap
        start_oracle(quick_model_dir, redis_server.url, f"bbthrottle{i}", tmp_path, extra_env={**throttle, **env},
                     wait=False)
        for i, env in enumerate([{}, {"BBRANGE_FORWARDED_ALLOW_IPS": "127.0.0.1"}]))
    try:
        for oracle in (direct, behind_proxy):
            oracle.process.wait_ready(oracle.url + "/healthz", timeout_s=60, interval_s=0.1)
        x = encode_npy(np.zeros((1, 1, 28, 28), np.float32))

        def predict(oracle: OracleProcess, key: str, forwarded_for: str | None = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": NPY_MEDIA_TYPE}
            if forwarded_for is not None:
                headers["X-Forwarded-For"] = forwarded_for
            return httpx.post(f"{oracle.url}/v1/models/mnist/predict", content=x, headers=headers, timeout=10)

        client_id, good = direct.create_client(10)
        assert [predict(direct, f"bbr_wrong{i}").status_code for i in range(8)] == [401] * 5 + [429] * 3
        r = predict(direct, "bbr_wrong")
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_auth_failures"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        for i in range(3):  # while the address is throttled, a known key from it is answered
            assert predict(direct, good).status_code == 200
            # and a made-up X-Forwarded-For is not believed: the address stays the peer's
            r = predict(direct, f"bbr_wrong{i}", forwarded_for=f"203.0.113.{i + 1}")
            assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_auth_failures", r.text
        assert httpx.get(f"{direct.url}/v1/usage", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        assert direct.usage(client_id)["used"] == 3

        # Behind a configured proxy (here: loopback), X-Forwarded-For names the client that is throttled.
        _, trusted_good = behind_proxy.create_client(10)
        assert [predict(behind_proxy, "bbr_wrong", forwarded_for="198.51.100.7").status_code
                for _ in range(6)] == [401] * 5 + [429]
        assert predict(behind_proxy, "bbr_wrong", forwarded_for="198.51.100.8").status_code == 401
        assert predict(behind_proxy, trusted_good, forwarded_for="198.51.100.7").status_code == 200
    finally:
        for oracle in (direct, behind_proxy):
            oracle.stop()
