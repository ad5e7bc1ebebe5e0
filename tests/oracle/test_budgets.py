"""Budget accounting through real oracle processes and a real Redis."""

from __future__ import annotations

import asyncio
import random

import httpx
import numpy as np

from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy


def predict(url: str, key: str | None, x: np.ndarray, **headers: str) -> httpx.Response:
    h = {"Content-Type": NPY_MEDIA_TYPE, **headers}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    return httpx.post(f"{url}/v1/models/mnist/predict", content=encode_npy(x), headers=h, timeout=30)


def metric_value(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        label_part = line[len(name) + 1 : line.index("}")]
        pairs = dict(p.split("=", 1) for p in label_part.split(",") if p)
        if all(pairs.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_concurrent_requests_from_several_clients_never_exceed_budgets(oracle_pair, mnist_test):
    """>=200 concurrent requests from 3 clients spread over 2 oracle processes sharing one Redis."""
    a, b = oracle_pair
    budgets = {"alpha": 157, "beta": 61, "gamma": 300}
    clients = {name: a.create_client(budget, name) for name, budget in budgets.items()}
    rng = random.Random(0)
    plan = []  # (client name, server url, batch size)
    for _ in range(240):
        name = rng.choice(list(budgets))
        plan.append((name, rng.choice([a.url, b.url]), rng.randint(1, 6)))
    x = mnist_test.x[:6]

    async def fire() -> list[tuple[str, int, httpx.Response]]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=300)) as http:
            async def one(name: str, url: str, n: int):
                r = await http.post(f"{url}/v1/models/mnist/predict", content=encode_npy(x[:n]), headers={
                    "Content-Type": NPY_MEDIA_TYPE, "Accept": NPY_MEDIA_TYPE,
                    "Authorization": f"Bearer {clients[name][1]}"})
                return name, n, r
            return await asyncio.gather(*(one(*p) for p in plan))

    results = asyncio.run(fire())
    answered = dict.fromkeys(budgets, 0)
    for name, n, r in results:
        assert r.status_code in (200, 429), r.text
        if r.status_code == 200:
            labels = decode_npy(r.content)
            assert labels.shape == (n,)
            answered[name] += n
        else:
            assert r.json()["error"]["code"] == "budget_exhausted"
            assert int(r.headers["X-Budget-Remaining"]) < n

    for name, budget in budgets.items():
        client_id = clients[name][0]
        usage = a.usage(client_id)
        assert answered[name] <= budget
        assert usage["used"] == answered[name], "Redis must have charged exactly the inputs answered"
        assert usage["remaining"] == budget - answered[name]
        # Metrics of both processes together count every answered input, under the client id.
        exported = sum(metric_value(o.url, "bbrange_oracle_inputs_answered_total", client=client_id, model="mnist")
                       for o in oracle_pair)
        assert exported == answered[name]
    # beta asked for more than its budget in requests of 1..6 inputs: it must have been cut off just below it.
    assert sum(n for name, n, _ in results if name == "beta") > budgets["beta"]
    assert budgets["beta"] - 6 < answered["beta"] <= budgets["beta"]


def test_budget_of_exactly_n_single_inputs_then_429(oracle_pair, mnist_test):
    a, b = oracle_pair
    client_id, key = a.create_client(25)
    codes = [predict((a, b)[i % 2].url, key, mnist_test.x[i : i + 1]).status_code for i in range(25)]
    assert codes == [200] * 25
    r = predict(b.url, key, mnist_test.x[:1])
    assert r.status_code == 429
    body = r.json()["error"]
    assert body["code"] == "budget_exhausted" and body["details"]["remaining"] == 0
    assert r.headers["X-Budget-Remaining"] == "0"
    assert a.usage(client_id)["used"] == 25


def test_a_batch_larger_than_the_remaining_budget_is_refused_whole(oracle, mnist_test):
    client_id, key = oracle.create_client(10)
    assert predict(oracle.url, key, mnist_test.x[:7]).status_code == 200
    r = predict(oracle.url, key, mnist_test.x[:4])
    assert r.status_code == 429
    assert r.json()["error"]["details"] == {"remaining": 3, "requested": 4}
    assert oracle.usage(client_id)["used"] == 7
    assert predict(oracle.url, key, mnist_test.x[:3]).status_code == 200
    assert oracle.usage(client_id)["remaining"] == 0


def test_labels_are_argmax_of_the_served_model(oracle, quick_model_dir, mnist_test):
    import torch

    from bbrange.shared.model_card import load_model

    model, _ = load_model(quick_model_dir / "mnist.json", torch.device("cpu"))
    with torch.no_grad():
        expected = model(torch.from_numpy(mnist_test.x[:50])).argmax(1).numpy()
    _, key = oracle.create_client(100)
    r = predict(oracle.url, key, mnist_test.x[:50], Accept=NPY_MEDIA_TYPE)
    np.testing.assert_array_equal(decode_npy(r.content), expected)
    # JSON and uint8 encodings label the same images the same way.
    r = httpx.post(f"{oracle.url}/v1/models/mnist/predict", json={"inputs": mnist_test.x[:3].tolist()},
                   headers={"Authorization": f"Bearer {key}"})
    assert r.json()["labels"] == expected[:3].tolist() and r.json()["budget_remaining"] == 47
    as_uint8 = np.round(mnist_test.x[:47] * 255).astype(np.uint8)
    r = predict(oracle.url, key, as_uint8, Accept=NPY_MEDIA_TYPE)
    np.testing.assert_array_equal(decode_npy(r.content), expected[:47])


def test_unknown_missing_and_revoked_keys(oracle, mnist_test):
    r = predict(oracle.url, None, mnist_test.x[:1])
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    r = predict(oracle.url, "bbr_not-a-real-key", mnist_test.x[:1])
    assert r.status_code == 401 and r.json()["error"]["message"] == "unknown API key"
    client_id, key = oracle.create_client(10)
    assert predict(oracle.url, key, mnist_test.x[:1]).status_code == 200
    with oracle.admin() as admin:
        assert admin.post(f"/v1/admin/clients/{client_id}/revoke").json()["revoked"] is True
    r = predict(oracle.url, key, mnist_test.x[:1])
    assert r.status_code == 403 and r.json()["error"]["code"] == "revoked"
    assert oracle.usage(client_id)["used"] == 1


def test_top_up_usage_and_admin_auth(oracle, mnist_test):
    client_id, key = oracle.create_client(2)
    assert predict(oracle.url, key, mnist_test.x[:2]).status_code == 200
    assert predict(oracle.url, key, mnist_test.x[:1]).status_code == 429
    with oracle.admin() as admin:
        topped = admin.post(f"/v1/admin/clients/{client_id}/top-up", json={"amount": 5}).json()
        assert (topped["budget"], topped["used"], topped["remaining"]) == (7, 2, 5)
        assert admin.post("/v1/admin/clients/c_nope/top-up", json={"amount": 5}).status_code == 404
        bad = admin.post("/v1/admin/clients", json={"name": "x", "budget": -1})
        assert bad.status_code == 422 and "budget" in bad.json()["error"]["message"]
        listed = admin.get("/v1/admin/clients").json()["clients"]
        assert client_id in {c["client_id"] for c in listed}
    assert predict(oracle.url, key, mnist_test.x[:5]).status_code == 200
    own = httpx.get(f"{oracle.url}/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()
    assert own["used"] == 7 and own["remaining"] == 0
    wrong = httpx.get(f"{oracle.url}/v1/admin/clients", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    # A client key is not an admin token.
    assert httpx.get(f"{oracle.url}/v1/admin/clients", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_per_minute_rate_limit(oracle, mnist_test):
    client_id, key = oracle.create_client(100, rate_per_minute=5)
    r = predict(oracle.url, key, mnist_test.x[:6])
    assert r.status_code == 422 and "per-minute rate" in r.json()["error"]["message"]
    answered = 0
    for n in (3, 2, 1, 1, 1, 1, 1, 1):
        r = predict(oracle.url, key, mnist_test.x[:n])
        if r.status_code != 200:
            break
        answered += n
    # Five fit in a window; the window can roll over once during the loop, never twice.
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert answered in (5, 6, 7, 8, 9, 10)
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert oracle.usage(client_id)["used"] == answered


def test_metrics_expose_refusals_budget_and_histograms(oracle, mnist_test):
    client_id, key = oracle.create_client(3)
    before = metric_value(oracle.url, "bbrange_oracle_refusals_total", reason="budget_exhausted", model="mnist")
    predict(oracle.url, key, mnist_test.x[:3])
    predict(oracle.url, key, mnist_test.x[:1])
    after = metric_value(oracle.url, "bbrange_oracle_refusals_total", reason="budget_exhausted", model="mnist")
    assert after == before + 1
    text = httpx.get(f"{oracle.url}/metrics").text
    # /metrics is unauthenticated: it lists no client's remaining budget (finding 8 of issue 10).
    assert "budget_remaining" not in text
    for name in ("bbrange_oracle_request_seconds_bucket", "bbrange_oracle_batch_size_bucket",
                 "bbrange_oracle_inference_seconds_bucket"):
        assert name in text
    assert key not in text, "API keys must never appear as label values"
