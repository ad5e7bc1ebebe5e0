"""The hybrid: a decision-based search started from the substitute's transferred example where the oracle
confirms it; every query counted in its phase, and the labelling queries amortised over the images attacked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.spec.attacks.hybrid import HybridCrafting
from bbrange.attacker.campaigns.spec.attacks.registry import registered
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.spec.limits import check_spec_limits
from bbrange.attacker.engine import BlackBoxAttack, InProcessOracle, QueryCounter, SubstituteConfig, run_blackbox_attack
from bbrange.attacker.engine.attack import CraftingContext
from bbrange.attacker.engine.query_attacks.base import QueryAttack
from bbrange.attacker.engine.query_attacks.budget import distances
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
from bbrange.attacker.engine.query_attacks.hybrid import Hybrid, HybridDetails, HybridMeasures
from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT
from bbrange.attacker.engine.query_attacks.transfer_start import l2_walk
from bbrange.shared.http_errors import ApiError
from tests.engine.decision_runs import one_thread
from tests.specs import campaign_spec

QUICK = SubstituteConfig(substitute_epochs=1, train_epochs=2, seed=3)
N = 12


def test_the_hybrid_counts_every_phase_and_amortises_the_labelling(quick_oracle: InProcessOracle, mnist_test) -> None:
    counter = QueryCounter(quick_oracle)
    x, y = mnist_test.x[100 : 100 + N], mnist_test.y[100 : 100 + N]
    attack = Hybrid(inner=HopSkipJump(max_queries_per_image=40, checkpoints=(5, 40), init_num_evals=10))
    stages: list[str] = []
    with one_thread():
        result = run_blackbox_attack(counter, mnist_test.x[:20], x, y, BlackBoxAttack(QUICK, attack),
                                     on_progress=lambda stage, fraction: stages.append(stage))
    assert result.completed and result.substitute is not None and result.queries_per_image is not None
    # the search on the oracle is the "attack" stage, after the substitute, never "crafting"
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == ["agreement", "attack", "evaluation"]
    attacked = int(result.queries_per_image.sum())
    # S0 and one augmentation labelled (40); no evaluation: the search's examples are the oracle's answers already;
    # noise of each found size (N), and three fixed sizes in each norm (6 N)
    assert counter.usage.by_phase == {"labelling": 40, "agreement": N, "attack": attacked, "evaluation": 0,
                                      "baseline": 7 * N}
    assert sum(counter.usage.by_phase.values()) == counter.total
    assert np.array_equal(result.success, quick_oracle.label(result.x_adv) != result.label_before)
    measures = result.measures
    assert isinstance(measures, HybridMeasures)
    out = measures.as_results()
    assert out["labelling_queries"] == 40 and out["amortised_labelling_queries_per_image"] == pytest.approx(40 / N)
    assert out["queries_per_image"]["total"] == attacked
    assert out["distortion_by_queries_amortised"]["queries"] == pytest.approx([5 + 40 / N, 40 + 40 / N])
    assert out["distortion_by_queries_amortised"]["median"] == out["distortion_by_queries"]["median"]
    assert "amortised" in out["amortisation_note"] and out["transfer_eps"] == 0.3
    assert out["transfer_start"] == {"method": "fgsm", "eps": 0.3}
    # the starts the search reports confirmed are the transferred examples the oracle misclassifies
    context = CraftingContext(result.substitute.model, QueryCounter(quick_oracle), x, result.label_before, 10, 3,
                              torch.device("cpu"))
    transferred = quick_oracle.label(attack.transfer_starts(context)) != result.label_before
    assert out["transfer_starts_confirmed"] == pytest.approx(float(transferred.mean()))


@pytest.mark.parametrize("inner", [HopSkipJump(max_queries_per_image=30, checkpoints=(1, 10, 30), init_num_evals=10),
                                   SignOPT(max_queries_per_image=30, checkpoints=(1, 10, 30), k=10, directions=5)],
                         ids=["hopskipjump", "sign_opt"])
def test_a_start_the_oracle_confirms_is_where_the_search_begins(quick_oracle: InProcessOracle,
                                                                 quick_oracle_model: torch.nn.Module, mnist_test,
                                                                 inner: QueryAttack) -> None:
    # The oracle's own network as the substitute: most FGSM examples transfer, some at this ε do not.
    x = np.asarray(mnist_test.x[:N], np.float32)
    counter = QueryCounter(quick_oracle)
    with one_thread():
        label = quick_oracle.label(x)
        context = CraftingContext(quick_oracle_model, counter, x, label, 10, 0, torch.device("cpu"))
        attack = Hybrid(inner=inner, transfer_eps=0.15)
        starts = attack.transfer_starts(context)
        confirmed = quick_oracle.label(starts) != label
        crafted = attack.craft_set(context, None, lambda fraction: None)
    details = crafted.details
    assert isinstance(details, HybridDetails)
    assert confirmed.any() and (~confirmed).any()
    assert np.array_equal(details.transfer_confirmed, confirmed)
    transfer = distances(x, starts, inner.norm)
    assert np.allclose(details.transfer_distortion, transfer)
    # the first query of each image is its start: where confirmed, it is already the example after one query
    assert np.all(details.result.at_checkpoints[confirmed, 0] <= transfer[confirmed] + 1e-6)
    assert np.all(np.isinf(details.result.at_checkpoints[~confirmed, 0]))
    assert np.all(details.result.distortion[confirmed] <= transfer[confirmed] + 1e-6)
    assert counter.used("attack") == int(details.result.queries.sum()) and details.result.queries.max() <= 30


def with_crafting(**crafting: Any) -> dict[str, Any]:
    return campaign_spec(crafting={"method": "hybrid", **crafting})


def test_the_hybrid_spec_builds_its_engine_attack_and_refuses_what_it_cannot_do() -> None:
    crafting = CampaignSpec.model_validate(with_crafting(norm="linf", transfer_eps=0.2,
                                                         max_queries_per_image=500)).crafting
    assert isinstance(crafting, HybridCrafting)
    assert crafting.label() == "Hybrid: FGSM ε=0.2 start, HopSkipJump LINF, ≤500 queries/image"
    built = registered("hybrid").engine_attack(crafting)
    assert isinstance(built, Hybrid) and isinstance(built.inner, HopSkipJump) and built.needs_substitute
    assert (built.inner.norm, built.inner.max_queries_per_image, built.transfer_eps) == ("linf", 500, 0.2)
    built = registered("hybrid").engine_attack(CampaignSpec.model_validate(with_crafting(inner="sign_opt")).crafting)
    assert isinstance(built, Hybrid) and isinstance(built.inner, SignOPT)
    assert (built.start, built.overshoot) == ("l2_walk", 3.0)  # an L2 search starts from the L2 walk by default
    assert (built.inner.norm, registered("hybrid").engine_attack(crafting).start) == ("l2", "fgsm")  # L∞: FGSM
    walk = CampaignSpec.model_validate(with_crafting(start="l2_walk", overshoot=3)).crafting
    assert isinstance(walk, HybridCrafting) and walk.label().startswith("Hybrid: L2 walk ×3 start")
    built = registered("hybrid").engine_attack(walk)
    assert isinstance(built, Hybrid) and (built.start, built.overshoot) == ("l2_walk", 3.0)
    for refused, message in [({"inner": "sign_opt", "norm": "linf"}, "inner sign_opt supports the norm"),
                             ({"targeted": True, "target": "next"}, "hybrid is untargeted only"),
                             ({"inner": "rays"}, "inner"), ({"transfer_eps": 0}, "transfer_eps"),
                             ({"start": "pgd"}, "start"), ({"overshoot": 0.5}, "overshoot")]:
        with pytest.raises(ValidationError, match=message):
            CampaignSpec.model_validate(with_crafting(**refused))
    with pytest.raises(ValueError, match="untargeted"):
        Hybrid(inner=HopSkipJump(target="next"))


def test_the_hybrid_is_held_to_both_the_substitute_and_the_query_limits() -> None:
    spec = CampaignSpec.model_validate(with_crafting(max_queries_per_image=100))  # S0 30, ρ 2: 120 points
    check_spec_limits(spec, 30, AttackerSettings(max_substitute_points=120, max_attack_queries=6_000))
    with pytest.raises(ApiError, match="substitute would be trained on 120 points"):
        check_spec_limits(spec, 30, AttackerSettings(max_substitute_points=119, max_attack_queries=6_000))
    with pytest.raises(ApiError, match="6,000 attack queries"):
        check_spec_limits(spec, 30, AttackerSettings(max_substitute_points=120, max_attack_queries=5_999))


def test_the_l2_walk_crosses_the_substitute_boundary_and_stretches_its_step(quick_oracle_model: torch.nn.Module,
                                                                             mnist_test) -> None:
    # the oracle's own model as the substitute: the walk must flip every image it labels, within its steps
    model = quick_oracle_model.eval()
    x = torch.from_numpy(mnist_test.x[:N])
    y = model(x).argmax(1)
    walked = l2_walk(model, x, y, overshoot=1.0)
    assert (model(walked).argmax(1) != y).all()
    assert float(walked.min()) >= 0.0 and float(walked.max()) <= 1.0
    stretched = l2_walk(model, x, y, overshoot=2.0)
    grown = (stretched - x).flatten(1).norm(dim=1) / (walked - x).flatten(1).norm(dim=1)
    assert bool((grown > 1.2).all()) and bool((grown <= 2.0 + 1e-5).all())  # clipping may shorten the stretch
