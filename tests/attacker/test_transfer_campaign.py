"""A new gradient transfer attack on an ensemble of two small, adversarially trained substitutes, as a campaign
through the real API, a real worker and the real oracle over HTTP: the ensemble costs one substitute's labels, each
size is measured beside its noise baseline, and the results and the samples name the crafting method."""

from __future__ import annotations

from bbrange.attacker.campaigns.spec.builder import gradient_attack
from tests.attacker.conftest import AttackerStack, oracle_answered, small_spec, submit, wait_final
from tests.conftest import OracleProcess

N = 60  # the small campaign's evaluation images


def test_mi_fgsm_on_an_ensemble_of_two_substitutes(attacker: AttackerStack, oracle: OracleProcess,
                                                     oracle_key: tuple[str, str]) -> None:
    client_id, api_key = oracle_key
    spec = small_spec(oracle.url, api_key, crafting=gradient_attack("mifgsm", eps=[0.3, 0.1], loss="margin"),
                      preset=["papernot-mnist", "mlp"],
                      substitute={"augment_with": "ensemble", "adversarial_training": {"method": "fgsm", "eps": 0.2}})
    with attacker.client() as api:
        cid = submit(api, spec)
        record = wait_final(api, cid, timeout=240)
        assert record["state"] == "succeeded", record["error"]
        q = record["queries"]
        # S0 = 30, ρ = 2: 120 labels for both members; each size's examples and their noise, 60 each
        assert (q["labelling"], q["agreement"], q["evaluation"], q["baseline"]) == (120, N, 2 * N, 2 * N)
        assert q["total"] == oracle_answered(oracle, client_id) == oracle.usage(client_id)["used"]
        results = record["results"]
        assert results["method"] == "mifgsm" and results["crafting"] == "MI-FGSM L∞ ε=0.3, 0.1, margin"
        assert [s["eps"] for s in results["by_eps"]] == [0.3, 0.1]
        assert all(s["noise_rate"] is not None for s in results["by_eps"])
        assert record["spec"]["substitute"]["presets"] == ["papernot-mnist", "mlp"]
        page = api.get(f"/attacks/{cid}/samples", params={"limit": N}).raise_for_status().json()
        assert page["method"] == "mifgsm" and page["total"] == N
        assert all(s["linf"] <= 0.3 + 1e-6 for s in page["items"])
