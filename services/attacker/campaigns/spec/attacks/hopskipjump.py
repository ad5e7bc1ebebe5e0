"""HopSkipJump in a campaign spec: the shared decision-based settings (query.py) and the reference's own
(Chen, Jordan & Wainwright 2020; the engine's query_attacks/hopskipjump.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from bbrange.attacker.campaigns.spec.attacks.query import QueryCraftingSpec
from bbrange.attacker.campaigns.spec.attacks.registry import register_attack

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class HopSkipJumpCrafting(QueryCraftingSpec):
    method: Literal["hopskipjump"]
    norms: ClassVar[tuple[str, ...]] = ("l2", "linf")
    init_evals: int = Field(100, ge=1, le=10_000, description="Queries of the first gradient estimate; iteration t "
                                                              "asks init_evals·√t (the reference's init_num_evals)")
    max_evals: int = Field(10_000, ge=1, le=100_000, description="Most queries of one gradient estimate "
                                                                  "(the reference's max_num_evals)")
    gamma: float = Field(1.0, gt=0, le=1_000, description="γ: the binary search stops within θ = γ/d^1.5 (L2) or "
                                                          "γ/d² (L∞), d the input's dimension")
    stepsize_search: Literal["geometric_progression", "grid_search"] = Field(
        "geometric_progression", description="How the step along the estimated gradient is chosen: halved from "
                                             "dist/√t until adversarial, or the best of 20 sizes dist·10^[-4, 0]")

    @model_validator(mode="after")
    def _evals_ordered(self) -> HopSkipJumpCrafting:
        if self.init_evals > self.max_evals:
            raise ValueError("init_evals must not exceed max_evals")
        return self

    def label(self) -> str:
        return "HopSkipJump" + super().label().removeprefix(self.method)


def engine_hopskipjump(spec: HopSkipJumpCrafting) -> Attack:
    from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump

    return HopSkipJump(norm="l2" if spec.norm == "l2" else "linf", target=spec.target if spec.targeted else None,
                       target_class=spec.target_class,
                       max_queries_per_image=spec.max_queries_per_image, checkpoints=tuple(spec.checkpoints),
                       init_num_evals=spec.init_evals, max_num_evals=spec.max_evals, gamma=spec.gamma,
                       stepsize_search=spec.stepsize_search, evasion=spec.engine_evasion())


register_attack("hopskipjump", HopSkipJumpCrafting, engine_hopskipjump)
