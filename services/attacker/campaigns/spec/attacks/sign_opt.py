"""Sign-OPT in a campaign spec: a decision-based L2 attack, untargeted or targeted (the engine's
query_attacks/sign_opt.py), with the reference implementation's defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from bbrange.attacker.campaigns.spec.attacks.query import QueryCraftingSpec
from bbrange.attacker.campaigns.spec.attacks.registry import register_attack

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class SignOptCrafting(QueryCraftingSpec):
    norms: ClassVar[tuple[str, ...]] = ("l2",)
    method: Literal["sign_opt"]
    k: int = Field(200, ge=1, le=2_000, description="Queries per estimate of the gradient's sign")
    alpha: float = Field(0.2, gt=0, le=10, description="The line search's first step size")
    beta: float = Field(0.001, gt=0, le=1, description="The smoothing radius of the gradient's sign estimate")
    iterations: int = Field(1_000, ge=1, le=100_000, description="Most gradient steps per image (the query budget "
                                                                 "usually ends them first)")
    directions: int = Field(100, ge=1, le=1_000, description="Random directions tried to start an image (where no "
                                                             "start of the target class was given or it failed)")

    def label(self) -> str:
        return "Sign-OPT " + super().label().split(" ", 1)[1]


def engine_sign_opt(spec: SignOptCrafting) -> Attack:
    from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT

    return SignOPT(norm="l2", max_queries_per_image=spec.max_queries_per_image, checkpoints=tuple(spec.checkpoints),
                   target=spec.target if spec.targeted else None, target_class=spec.target_class,
                   k=spec.k, alpha=spec.alpha, beta=spec.beta, iterations=spec.iterations, directions=spec.directions,
                   evasion=spec.engine_evasion())


register_attack("sign_opt", SignOptCrafting, engine_sign_opt)
