"""What every successful campaign against a foreign endpoint must show."""

from __future__ import annotations

from typing import Any

import pytest


def assert_complete(record: dict[str, Any], answered_by_server: int, eval_size: int) -> dict[str, Any]:
    """Succeeded, with substitute accuracy, transfer, the noise baseline and clean accuracy, and a query count
    equal to the inputs the server answered. Returns the results."""
    assert record["state"] == "succeeded", record
    q, res = record["queries"], record["results"]
    assert q["total"] == answered_by_server, (q, answered_by_server)
    assert q["total"] == q["labelling"] + q["agreement"] + q["evaluation"] + q["baseline"]
    assert (q["agreement"], q["evaluation"], q["baseline"]) == (eval_size, eval_size, eval_size)
    assert 0.0 <= res["substitute_accuracy"] <= 1.0 and 0.0 <= res["oracle_agreement"] <= 1.0
    assert res["samples"] == eval_size and 0.0 <= res["transfer_rate"] <= 1.0
    assert res["noise_samples"] == eval_size and 0.0 <= res["noise_rate"] <= 1.0
    assert res["lift_over_noise"] == pytest.approx(res["transfer_rate"] - res["noise_rate"])
    assert res["clean_accuracy"] is not None
    return dict(res)
