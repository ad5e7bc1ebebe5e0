"""A campaign against a model the project did not train, imported as ONNX and served by ONNX Runtime."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.attacker.conftest import AttackerStack, oracle_answered, small_spec, start_stack, submit, wait_final
from tests.conftest import OracleProcess, RedisServer


@pytest.fixture(scope="module")
def onnx_attacker(redis_server: RedisServer, onnx_oracle: OracleProcess,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackerStack]:
    """An attacker whose allowlist holds the ONNX oracle's exact origin (allowlists name ports)."""
    stack = start_stack(redis_server, 6, tmp_path_factory.mktemp("onnx-attacker"), workers=1, oracles=(onnx_oracle,))
    yield stack
    stack.stop()


def test_a_campaign_runs_against_an_imported_onnx_model(onnx_attacker: AttackerStack,
                                                        onnx_oracle: OracleProcess) -> None:
    client_id, api_key = onnx_oracle.create_client(10_000, "campaign-onnx")
    spec = small_spec(onnx_oracle.url, api_key, name="onnx", target={"model": "foreign"},
                      substitute={"rho": 1}, evaluation={"size": 30})
    with onnx_attacker.client() as api:
        record = wait_final(api, submit(api, spec))
    assert record["state"] == "succeeded", record
    q = record["queries"]
    assert (q["labelling"], q["agreement"], q["evaluation"], q["baseline"]) == (60, 30, 30, 30)
    assert 0.0 <= record["results"]["transfer_rate"] <= 1.0 and record["results"]["noise_rate"] is not None
    assert oracle_answered(onnx_oracle, client_id) == q["total"] == onnx_oracle.usage(client_id)["used"]
