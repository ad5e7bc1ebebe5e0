"""A decision-based attack (RayS) as a campaign against KServe's own model server over the open inference
protocol (V2): every question it asks, and every noise input of its baselines, is an input the server answered,
so that the campaign's count and the server's are equal."""

from __future__ import annotations

from tests.attacker.conftest import AttackerStack, submit, wait_final
from tests.targets.conftest import KServeServer, tiny_spec

IMAGES = 10
PER_IMAGE = 200


def test_a_query_attack_campaign_against_kserve_counts_what_the_server_answered(
        stack: AttackerStack, kserve_server: KServeServer) -> None:
    target = {"protocol": "open-inference-v2", "oracle_url": kserve_server.url, "model": "mnist"}
    crafting = {"method": "rays", "max_queries_per_image": PER_IMAGE, "checkpoints": [50, 100, 200]}
    before = kserve_server.seen("mnist", "v2")
    with stack.client() as api:
        cid = submit(api, tiny_spec(target, crafting=crafting, evaluation={"size": IMAGES}, name="kserve rays"))
        record = wait_final(api, cid, timeout=300)
        items = api.get(f"/attacks/{cid}/samples", params={"limit": IMAGES}).raise_for_status().json()["items"]
    _, inputs = (a - b for a, b in zip(kserve_server.seen("mnist", "v2"), before, strict=True))
    assert record["state"] == "succeeded", record
    q = record["queries"]
    assert q["total"] == inputs == q["inputs_sent"], (q, inputs)  # every phase, nothing sent twice
    assert q["total"] == q["agreement"] + q["attack"] + q["baseline"] and q["labelling"] == q["evaluation"] == 0
    # noise at each found size, then one draw per image at each of 3 L∞ and 3 L2 fixed sizes
    assert q["agreement"] == IMAGES and q["baseline"] == 7 * IMAGES and 0 < q["attack"] <= PER_IMAGE * IMAGES
    results = record["results"]
    assert results["distortion_by_queries"]["norm"] == "linf" and results["distortion_by_queries"]["queries"] == [
        50, 100, 200]
    assert results["distortion_by_queries_other"]["norm"] == "l2"
    assert [p["size"] for p in results["success_by_size"]["points"]] == [0.1, 0.2, 0.3]
    assert [p["size"] for p in results["success_by_size_other"]["points"]] == [1.5, 2.0, 3.0]
    assert results["queries_per_image"]["total"] == q["attack"]
    assert len(items) == IMAGES and sum(s["queries"] for s in items) == q["attack"]
    assert all(s["l2"] >= 0 and s["linf"] >= 0 and 0 < s["queries"] <= PER_IMAGE for s in items)
