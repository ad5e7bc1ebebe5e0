"""RayS in a campaign spec: a decision-based L∞ attack, untargeted only (the engine's query_attacks/rays.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from bbrange.attacker.campaigns.spec.attacks.query import QueryCraftingSpec
from bbrange.attacker.campaigns.spec.attacks.registry import register_attack

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class RaysCrafting(QueryCraftingSpec):
    norms: ClassVar[tuple[str, ...]] = ("linf",)
    targeting: ClassVar[tuple[bool, ...]] = (False,)
    method: Literal["rays"]
    norm: str = Field("linf", description="The distortion the attack minimises: RayS supports linf only")
    tolerance: float = Field(1e-3, gt=0, le=1, description="The binary search's tolerance on the ray's radius "
                                                           "(L2 along the unit ray; L∞ is it over √D)")
    epsilon: float | None = Field(None, gt=0, le=1, description="Stop an image once its L∞ distortion is at most "
                                                               "this (default: spend the whole budget)")

    def label(self) -> str:
        return "RayS " + super().label().split(" ", 1)[1]


def engine_rays(spec: RaysCrafting) -> Attack:
    from bbrange.attacker.engine.query_attacks.rays import RayS

    return RayS(norm="linf", max_queries_per_image=spec.max_queries_per_image, checkpoints=tuple(spec.checkpoints),
                tolerance=spec.tolerance, epsilon=spec.epsilon, evasion=spec.engine_evasion())


register_attack("rays", RaysCrafting, engine_rays)
