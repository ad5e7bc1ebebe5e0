"""From the engine's result to what a campaign keeps: the results of its record and its samples."""

from __future__ import annotations

import numpy as np

from bbrange.attacker.campaigns.storage.records import CampaignResults
from bbrange.attacker.campaigns.storage.samples import SampleSet
from bbrange.attacker.campaigns.worker.plan import CampaignInputs
from bbrange.attacker.engine import BlackBoxResult


def campaign_results(result: BlackBoxResult, method: str | None = None, crafting: str | None = None) -> CampaignResults:
    """The record's results; `method` and `crafting` name the attack (the spec's method and its label)."""
    reports = result.substitute.reports if result.substitute is not None else []
    return CampaignResults.model_validate({
        "method": method,
        "crafting": crafting,
        **(result.report.as_dict() if result.report else {}),
        "substitute_accuracy": reports[-1].substitute_accuracy if reports else None,
        "oracle_agreement": reports[-1].oracle_agreement if reports else None,
        "stop_reason": result.substitute.stop_reason if result.substitute is not None else None,
        "by_eps": [{"eps": s.eps, **s.report.as_dict()} for s in result.sizes] or None,
        # The attack's own measures (`Attack.measures`), under the keys it names
        **(result.measures.as_results() if result.measures is not None else {}),
    })


def sample_set(inputs: CampaignInputs, result: BlackBoxResult) -> SampleSet:
    n = len(result.label_after)
    assert result.distortion is not None
    d = result.distortion
    targets = result.targets[:n] if result.targets is not None else np.full(n, -1, dtype=np.int64)
    return SampleSet(
        index=inputs.eval_index[:n].astype(np.int64), x=inputs.x_eval[:n].astype(np.float32),
        x_adv=result.x_adv[:n].astype(np.float32), y_true=inputs.y_eval[:n].astype(np.int64),
        label_before=result.label_before[:n].astype(np.int64), label_after=result.label_after.astype(np.int64),
        target=targets.astype(np.int64), success=result.success.astype(bool), l0=d.l0, l2=d.l2, linf=d.linf,
        queries=None if result.queries_per_image is None else result.queries_per_image[:n].astype(np.int64),
    )
