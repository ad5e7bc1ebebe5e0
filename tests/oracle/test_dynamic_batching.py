"""Dynamic batching: concurrent single-input requests run as fewer, larger forwards, each answered with its own
label and charged on its own; with batching off, one forward per request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np

from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy
from tests.conftest import OracleProcess, RedisServer, start_oracle
from tests.oracle.test_budgets import metric_value


def fire_singles(oracle: OracleProcess, key: str, model: str, x: np.ndarray) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(x))
        async with httpx.AsyncClient(base_url=oracle.url, timeout=60, limits=limits) as http:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": NPY_MEDIA_TYPE, "Accept": NPY_MEDIA_TYPE}
            return list(await asyncio.gather(*(
                http.post(f"/v1/models/{model}/predict", content=encode_npy(x[i:i + 1]), headers=headers)
                for i in range(len(x)))))
    return asyncio.run(run())


def forwards(oracle: OracleProcess, model: str) -> tuple[float, float]:
    """(forwards run, requests they answered) so far, from the oracle's metrics."""
    return (metric_value(oracle.url, "bbrange_oracle_forward_requests_count", model=model),
            metric_value(oracle.url, "bbrange_oracle_forward_requests_sum", model=model))


def check_singles(oracle: OracleProcess, model: str, x: np.ndarray, budget: int) -> tuple[float, float]:
    client_id, key = oracle.create_client(budget, f"batching-{model}")
    before = forwards(oracle, model)
    responses = fire_singles(oracle, key, model, x)
    after = forwards(oracle, model)
    answered = [r for r in responses if r.status_code == 200]
    assert all(r.status_code in (200, 429) for r in responses)
    assert len(answered) == min(budget, len(x)) and oracle.usage(client_id)["used"] == len(answered)
    whole = httpx.post(f"{oracle.url}/v1/models/{model}/predict", json={"inputs": x.tolist()}, timeout=60,
                       headers={"Authorization": f"Bearer {oracle.create_client(len(x), 'whole')[1]}"}).json()
    for i, r in enumerate(responses):
        if r.status_code == 200:
            assert decode_npy(r.content).tolist() == [whole["labels"][i]], f"request {i} got another's label"
    return after[0] - before[0], after[1] - before[1]


def test_concurrent_single_inputs_share_forwards_and_are_charged_one_by_one(onnx_oracle: OracleProcess, mnist_test):
    for model in ("foreign", "mnist"):
        runs, requests = check_singles(onnx_oracle, model, mnist_test.x[:64], budget=64)
        assert requests == 64 and runs < 64, (model, runs)
    # a budget that runs out in the middle of a burst: exactly the budget is answered
    check_singles(onnx_oracle, "foreign", mnist_test.x[:64], budget=37)


def test_with_batching_off_every_request_has_its_own_forward(quick_model_dir: Path, redis_server: RedisServer,
                                                             tmp_path: Path, mnist_test):
    oracle = start_oracle(quick_model_dir, redis_server.url, "bbnobatch", tmp_path,
                          extra_env={"BBRANGE_DYNAMIC_BATCHING": "false"})
    try:
        runs, requests = check_singles(oracle, "mnist", mnist_test.x[:32], budget=32)
        assert (runs, requests) == (32, 32)
    finally:
        oracle.stop()
