"""FGSM in a campaign spec: ε, or a list of sizes crafted on the one substitute (the engine's fgsm.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator

from bbrange.attacker.campaigns.spec.attacks.registry import CraftingSpec, register_attack

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack

Epsilon = Annotated[float, Field(gt=0, le=1)]
MAX_SIZES = 8


class FgsmCrafting(CraftingSpec):
    method: Literal["fgsm"]
    eps: Epsilon | Annotated[list[Epsilon], Field(min_length=1, max_length=MAX_SIZES)] = Field(
        0.3, description="ε: L∞ size of the perturbation; or a list of sizes, all crafted on the one substitute "
                         "(each further size costs evaluation and noise-baseline queries, no labelling); the "
                         "headline results and the samples are the first size's, `results.by_eps` has them all")

    @field_validator("eps")
    @classmethod
    def _distinct_sizes(cls, value: float | list[float]) -> float | list[float]:
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("give each ε once")
        return value

    def sizes(self) -> list[float]:
        """Every ε, the headline first."""
        return list(self.eps) if isinstance(self.eps, list) else [self.eps]

    def label(self) -> str:
        return "FGSM ε=" + ", ".join(f"{e:g}" for e in self.sizes())


def engine_fgsm(spec: FgsmCrafting) -> Attack:
    from bbrange.attacker.engine.fgsm import FGSM

    first, *more = spec.sizes()
    return FGSM(eps=first, more_sizes=tuple(more))


register_attack("fgsm", FgsmCrafting, engine_fgsm)
