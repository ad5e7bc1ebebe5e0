"""A campaign against a model the project did not train, imported as ONNX and served by ONNX Runtime."""

from __future__ import annotations

from tests.attacker.conftest import AttackerStack, oracle_answered, small_spec, submit, wait_final
from tests.conftest import OracleProcess


def test_a_campaign_runs_against_an_imported_onnx_model(attacker: AttackerStack, onnx_oracle: OracleProcess) -> None:
    client_id, api_key = onnx_oracle.create_client(10_000, "campaign-onnx")
    spec = small_spec(onnx_oracle.url, api_key, name="onnx", target={"model": "foreign"},
                      substitute={"rho": 1}, evaluation={"size": 30})
    with attacker.client() as api:
        record = wait_final(api, submit(api, spec))
    assert record["state"] == "succeeded", record
    q = record["queries"]
    assert (q["labelling"], q["agreement"], q["evaluation"]) == (60, 30, 30)
    assert 0.0 <= record["results"]["transfer_rate"] <= 1.0
    assert oracle_answered(onnx_oracle, client_id) == q["total"] == onnx_oracle.usage(client_id)["used"]
