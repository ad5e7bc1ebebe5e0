"""Campaign records and samples as a worker leaves them, built in-process for the rendering tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from bbrange.attacker.campaigns.storage.records import (
    CampaignError,
    CampaignRecord,
    CampaignResults,
    CampaignState,
    EpochMetrics,
    QueryCounts,
    utcnow,
)
from bbrange.attacker.campaigns.storage.samples import SampleSet

SPEC: dict[str, Any] = {
    "name": None, "dataset": "mnist",
    "target": {"protocol": "bbrange", "oracle_url": "http://127.0.0.1:8000", "model": "mnist", "api_key": "**********"},
    "initial_set": {"kind": "dataset", "split": "test", "offset": 0, "size": 30},
    "substitute": {"preset": "papernot-mnist", "rho": 2, "lam": 0.1},
    "crafting": {"method": "fgsm", "eps": [0.3, 0.1]},
    "evaluation": {"split": "test", "size": 60}, "query_budget": None, "seed": 0,
}


def epochs(n: int) -> list[EpochMetrics]:
    return [EpochMetrics(rho=r, set_size=30 * 2**r, new_points_labelled=30 * 2 ** max(r - 1, 0) if r else 30,
                         labelling_queries=30 * 2**r, substitute_accuracy=0.4 + 0.1 * r, oracle_agreement=0.42 + 0.1 * r,
                         step_size=0.1, train_loss=1.0, wall_s=1.5) for r in range(n)]


def succeeded(cid: str = "a" * 32, **results: Any) -> CampaignRecord:
    now = utcnow()
    by_eps = [{"eps": 0.3, "samples": 60, "transfer_rate": 0.5, "misclassification_rate": 0.5,
               "transfer_rate_on_correct": 0.48, "noise_rate": 0.1, "lift_over_noise": 0.4, "noise_samples": 60},
              {"eps": 0.1, "samples": 60, "transfer_rate": 0.2, "misclassification_rate": 0.2,
               "transfer_rate_on_correct": 0.18, "noise_rate": 0.05, "lift_over_noise": 0.15, "noise_samples": 60}]
    values = {"substitute_accuracy": 0.6, "oracle_agreement": 0.62, "samples": 60, "transfer_rate": 0.5,
              "misclassification_rate": 0.5, "label_change_rate": 0.49, "mean_l0": 0.9, "mean_l2": 5.0, "mean_linf": 0.3,
              "clean_accuracy": 0.95, "transfer_rate_on_correct": 0.48, "noise_rate": 0.1, "lift_over_noise": 0.4,
              "noise_samples": 60, "by_eps": by_eps, **results}
    return CampaignRecord(
        id=cid, state=CampaignState.succeeded, created_at=now - timedelta(seconds=30), started_at=now - timedelta(seconds=29),
        finished_at=now, owner="u_1", spec=SPEC, epochs=epochs(3), results=CampaignResults.model_validate(values),
        queries=QueryCounts(labelling=120, agreement=60, evaluation=120, baseline=120, total=420, inputs_sent=420),
        target_model={"name": "mnist", "dataset": "mnist", "input_shape": [1, 28, 28], "num_classes": 10,
                      "class_names": [str(i) for i in range(10)]},
        samples_available=True)


def cancelled(cid: str = "b" * 32) -> CampaignRecord:
    now = utcnow()
    return CampaignRecord(
        id=cid, name="stopped <early>", state=CampaignState.cancelled, created_at=now, started_at=now, finished_at=now,
        owner="u_1", spec=SPEC, epochs=epochs(2), results=CampaignResults(substitute_accuracy=0.5, oracle_agreement=0.52),
        queries=QueryCounts(labelling=75, agreement=60, total=135, inputs_sent=135),
        error=CampaignError(code="cancelled", message="cancelled on request [phase: substitute]"))


def samples(n: int = 12, seed: int = 0) -> SampleSet:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    x_adv = np.clip(x + 0.3 * rng.choice([-1.0, 1.0], size=x.shape), 0, 1).astype(np.float32)
    y = np.arange(n) % 10
    after = np.where(np.arange(n) % 2 == 0, (y + 1) % 10, y)
    return SampleSet(index=np.arange(30, 30 + n), x=x, x_adv=x_adv, y_true=y, label_before=y, label_after=after,
                     target=np.full(n, -1), success=after != y, l0=np.ones(n), l2=np.full(n, 8.0),
                     linf=np.full(n, 0.3))
