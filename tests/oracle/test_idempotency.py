"""Retries with an Idempotency-Key: answered once, charged once (real oracle processes, real Redis)."""

from __future__ import annotations

import httpx
import numpy as np

from bbrange.attacker.campaigns.spec.target import Target
from bbrange.attacker.campaigns.targets.bbrange import BbrangeTarget
from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy
from tests.oracle.test_budgets import metric_value, predict


def test_a_retry_with_the_same_key_gets_the_first_answer_and_is_not_charged_again(oracle_pair, mnist_test):
    a, b = oracle_pair
    client_id, key = a.create_client(100)
    x = mnist_test.x[:7]
    first = predict(a.url, key, x, Accept=NPY_MEDIA_TYPE, **{"Idempotency-Key": "batch-1"})
    # The retry may land on another oracle process: the claim lives in the shared Redis.
    again = predict(b.url, key, x, Accept=NPY_MEDIA_TYPE, **{"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 200
    assert np.array_equal(decode_npy(first.content), decode_npy(again.content))
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert a.usage(client_id)["used"] == 7 and again.headers["X-Budget-Remaining"] == "93"
    answered = sum(metric_value(o.url, "bbrange_oracle_inputs_answered_total", client=client_id) for o in (a, b))
    assert answered == 7
    assert metric_value(b.url, "bbrange_oracle_replayed_inputs_total", client=client_id) == 7
    # Another key is another batch, charged as such.
    assert predict(a.url, key, x, **{"Idempotency-Key": "batch-2"}).status_code == 200
    assert a.usage(client_id)["used"] == 14


def test_a_key_reused_for_another_request_or_malformed_is_refused(oracle, mnist_test):
    client_id, key = oracle.create_client(100)
    assert predict(oracle.url, key, mnist_test.x[:2], **{"Idempotency-Key": "k1"}).status_code == 200
    r = predict(oracle.url, key, mnist_test.x[2:4], **{"Idempotency-Key": "k1"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"
    r = predict(oracle.url, key, mnist_test.x[:2], **{"Idempotency-Key": "no spaces/or slashes"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_idempotency_key"
    assert oracle.usage(client_id)["used"] == 2
    # Keys are per client: another client's "k1" is a different batch.
    other_id, other_key = oracle.create_client(100)
    assert predict(oracle.url, other_key, mnist_test.x[2:4], **{"Idempotency-Key": "k1"}).status_code == 200
    assert oracle.usage(other_id)["used"] == 2


def test_a_refused_request_does_not_hold_its_key(oracle, mnist_test):
    client_id, key = oracle.create_client(2)
    x = mnist_test.x[:3]
    assert predict(oracle.url, key, x, **{"Idempotency-Key": "big"}).status_code == 429
    with oracle.admin() as admin:
        admin.post(f"/v1/admin/clients/{client_id}/top-up", json={"amount": 5}).raise_for_status()
    assert predict(oracle.url, key, x, **{"Idempotency-Key": "big"}).status_code == 200
    assert oracle.usage(client_id)["used"] == 3


class LoseFirstPredictResponse(httpx.BaseTransport):
    """Real HTTP to the oracle; the first predict response is read and then dropped, as a timeout would."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/predict") and self.lost == 0:
            response.read()
            self.lost += 1
            raise httpx.ReadTimeout("response lost", request=request)
        return response


def test_the_attacker_client_retry_after_a_lost_response_is_charged_once(oracle, mnist_test):
    client_id, key = oracle.create_client(1000)
    transport = LoseFirstPredictResponse()
    target = Target(oracle_url=oracle.url, model="mnist", api_key=key, max_batch_size=40)
    with BbrangeTarget(target, transport=transport) as remote:
        labels = remote.label(mnist_test.x[:100])
        assert transport.lost == 1 and remote.requests_retried == 1
        assert len(labels) == 100 == oracle.usage(client_id)["used"]
    direct = predict(oracle.url, oracle.create_client(1000)[1], mnist_test.x[:100], Accept=NPY_MEDIA_TYPE)
    assert np.array_equal(labels, decode_npy(direct.content))
