"""The hybrid in a campaign spec: a substitute trained as for FGSM, whose example (FGSM at `transfer_eps`, or its
L2 walk stretched by `overshoot`) starts a decision-based search (HopSkipJump or Sign-OPT) where the oracle already
misclassifies it (the engine's query_attacks/hybrid.py). Untargeted; the inner attack's norm and per-image budget
are the shared query settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from bbrange.attacker.campaigns.spec.attacks.query import QueryCraftingSpec
from bbrange.attacker.campaigns.spec.attacks.registry import register_attack

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack

INNER_NORMS = {"hopskipjump": ("l2", "linf"), "sign_opt": ("l2",)}
INNER_LABELS = {"hopskipjump": "HopSkipJump", "sign_opt": "Sign-OPT"}


class HybridCrafting(QueryCraftingSpec):
    method: Literal["hybrid"]
    targeting: ClassVar[tuple[bool, ...]] = (False,)
    trains_substitute: ClassVar[bool] = True
    inner: Literal["hopskipjump", "sign_opt"] = Field(
        "hopskipjump", description="The decision-based search started from the transferred example")
    transfer_eps: float = Field(0.3, gt=0, le=1, description="The L∞ size of the FGSM example crafted on the "
                                                             "substitute, the search's start where the oracle "
                                                             "misclassifies it (start = fgsm)")
    start: Literal["fgsm", "l2_walk"] | None = Field(
        None, description="How the start is crafted on the substitute: FGSM at transfer_eps, or l2_walk (the "
                          "substitute's normalised margin gradient in small L2 steps until its label changes, the "
                          "perturbation then stretched by overshoot). Default: l2_walk for an L2 search, fgsm for L∞")
    overshoot: float = Field(3.0, ge=1, le=10, description="start = l2_walk: the factor the walk's perturbation is "
                                                           "stretched by, so that it crosses the oracle's boundary too "
                                                           "(3: the best of 1.5-4 on benchmarks/decision_hybrid.py's "
                                                           "tuning split)")

    @property
    def start_method(self) -> Literal["fgsm", "l2_walk"]:
        return self.start or ("l2_walk" if self.norm == "l2" else "fgsm")

    @model_validator(mode="after")
    def _inner_norm(self) -> HybridCrafting:
        if self.norm not in INNER_NORMS[self.inner]:
            raise ValueError(f"the hybrid's inner {self.inner} supports the norm(s) "
                             f"{', '.join(INNER_NORMS[self.inner])}, not {self.norm!r}")
        return self

    def label(self) -> str:
        start = f"FGSM ε={self.transfer_eps:g}" if self.start_method == "fgsm" else f"L2 walk ×{self.overshoot:g}"
        return (f"Hybrid: {start} start, {INNER_LABELS[self.inner]} {self.norm.upper()}, "
                f"≤{self.max_queries_per_image:,} queries/image")


def engine_hybrid(spec: HybridCrafting) -> Attack:
    from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
    from bbrange.attacker.engine.query_attacks.hybrid import Hybrid
    from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT

    budget, checkpoints = spec.max_queries_per_image, tuple(spec.checkpoints)
    inner = (HopSkipJump(norm="l2" if spec.norm == "l2" else "linf", max_queries_per_image=budget,
                         checkpoints=checkpoints, evasion=spec.engine_evasion()) if spec.inner == "hopskipjump"
             else SignOPT(norm="l2", max_queries_per_image=budget, checkpoints=checkpoints,
                          evasion=spec.engine_evasion()))
    return Hybrid(inner=inner, transfer_eps=spec.transfer_eps, start=spec.start_method, overshoot=spec.overshoot)


register_attack("hybrid", HybridCrafting, engine_hybrid)
