"""What every attack of one perturbation size says in a spec: ε, or a list of sizes crafted on the one substitute
(the headline first); FGSM's spec model and the gradient attacks' (gradient.py) build on it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from bbrange.attacker.campaigns.spec.attacks.registry import CraftingSpec

Epsilon = Annotated[float, Field(gt=0, le=1)]
MAX_SIZES = 8
SIZES_NOTE = ("or a list of sizes, all crafted on the one substitute (each further size costs evaluation and "
              "noise-baseline queries, no labelling); the headline results and the samples are the first size's, "
              "`results.by_eps` has them all")


class SizedCrafting(CraftingSpec):
    eps: Epsilon | Annotated[list[Epsilon], Field(min_length=1, max_length=MAX_SIZES)] = Field(
        0.3, description=f"ε: L∞ size of the perturbation; {SIZES_NOTE}")

    @field_validator("eps")
    @classmethod
    def _distinct_sizes(cls, value: float | list[float]) -> float | list[float]:
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("give each ε once")
        return value

    def sizes(self) -> list[float]:
        """Every ε, the headline first."""
        return list(self.eps) if isinstance(self.eps, list) else [self.eps]

    def sizes_label(self) -> str:
        return "ε=" + ", ".join(f"{e:g}" for e in self.sizes())
