"""JSMA in a campaign spec: θ, Υ, Γ at the start and the target rule (the engine's jsma.py, jsma_attack.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from bbrange.attacker.campaigns.spec.attacks.registry import CraftingSpec, register_attack
from bbrange.attacker.engine.vocabulary import SearchDomain, TargetChoice

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class JsmaCrafting(CraftingSpec):
    method: Literal["jsma"]
    theta: float = Field(1.0, description="θ: +1 increases features, −1 decreases them")
    upsilon: float = Field(0.145, gt=0, le=1, description="Υ: maximum distortion, a fraction of the features")
    search_domain: SearchDomain = Field(
        "all", description="Γ at the start: every feature (the thesis's Algorithm 2; a pair may then hold a feature "
                           "that cannot move, which changes one feature and drops it from Γ), or only the features "
                           "that can move in θ's direction (cleverhans)")
    target: TargetChoice = Field(
        "random", description="Target class per sample: uniform among the other classes, (source + 1) mod C, "
                              "the substitute's least likely class, or `target_class` for all")
    target_class: int | None = Field(None, ge=0, description="The class every sample is pushed to when target = fixed")

    @field_validator("theta")
    @classmethod
    def _unit_theta(cls, value: float) -> float:
        if value not in (1.0, -1.0):
            raise ValueError("θ must be 1.0 (increase features) or -1.0 (decrease them)")
        return value

    def label(self) -> str:
        return f"JSMA θ={self.theta:+g} Υ={self.upsilon:.1%}"

    @model_validator(mode="after")
    def _fixed_needs_class(self) -> JsmaCrafting:
        if (self.target == "fixed") != (self.target_class is not None):
            raise ValueError("give target_class exactly when target is 'fixed'")
        return self


def engine_jsma(spec: JsmaCrafting) -> Attack:
    from bbrange.attacker.engine.jsma_attack import JSMA

    return JSMA(theta=spec.theta, upsilon=spec.upsilon, search_domain=spec.search_domain, target=spec.target,
                target_class=spec.target_class)


register_attack("jsma", JsmaCrafting, engine_jsma)
