"""What every decision-based attack's spec says (HopSkipJump, Sign-OPT, RayS register subclasses of it): the
norm it minimises, targeted or not and how targets are chosen, each image's query budget, and the query counts
at which its distortion curve is read. Refusals a person can act on, before any worker is involved."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bbrange.attacker.campaigns.spec.attacks.registry import CraftingSpec
from bbrange.attacker.engine.vocabulary import TargetChoice

if TYPE_CHECKING:
    from bbrange.attacker.engine.query_attacks.evasion import Evasion

# The engine's default checkpoints (query_attacks/budget.py), written here so the API stays torch-free.
CHECKPOINTS = [100, 200, 500, 1_000, 2_000, 5_000, 10_000]
MAX_QUERIES_PER_IMAGE = 100_000
# Per transformation: its default strength (noise σ = 0.02 kept HopSkipJump's queries below Blacklight's match
# threshold in benchmarks/detection_adaptive.py) and the most a spec may ask (past it the classifier is not invariant).
EVASION_STRENGTH = {"brightness": (0.05, 0.2), "noise": (0.02, 0.1)}


class EvasionSpec(BaseModel):
    """The adaptive attacker (the engine's query_attacks/evasion.py): every query sent through a random
    transformation that changes a similarity detector's fingerprint (Blacklight's) and hardly the label."""

    model_config = ConfigDict(strict=True, extra="forbid")
    transform: Literal["brightness", "noise"] = Field(description="brightness: x·(1+c)+b, c and b uniform in "
                                                                  "±strength per query; noise: Gaussian noise of "
                                                                  "σ = strength on every pixel")
    strength: float | None = Field(None, gt=0, description="brightness: ≤ 0.2 (default 0.05); noise: ≤ 0.1 "
                                                           "(default 0.02)")

    @model_validator(mode="after")
    def _strength(self) -> EvasionSpec:
        default, most = EVASION_STRENGTH[self.transform]
        if self.strength is None:
            self.strength = default
        elif self.strength > most:
            raise ValueError(f"evasion strength for {self.transform} must be at most {most}")
        return self


class QueryCraftingSpec(CraftingSpec):
    """The settings shared by decision-based attacks; a subclass sets `norms` and `targeting` and adds its own."""

    norms: ClassVar[tuple[str, ...]] = ("l2", "linf")
    targeting: ClassVar[tuple[bool, ...]] = (False, True)  # untargeted and/or targeted
    trains_substitute: ClassVar[bool] = False  # True: a substitute is trained first (the hybrid's start)
    norm: str = Field("l2", description="The distortion the attack minimises: l2 or linf (each attack says which "
                                        "it supports)")
    targeted: bool = Field(False, description="Push each image to a target class instead of any other class")
    target: TargetChoice | None = Field(None, description="Targeted: how each image's target class is chosen "
                                                          "(random, next, least_likely, fixed)")
    target_class: int | None = Field(None, ge=0, description="The class every image is pushed to when target = fixed")
    max_queries_per_image: int = Field(1_000, ge=1, le=MAX_QUERIES_PER_IMAGE,
                                       description="Queries each image may spend (initialisation, binary searches "
                                                   "and gradient estimates alike)")
    checkpoints: list[int] = Field(default_factory=lambda: list(CHECKPOINTS), min_length=1, max_length=32,
                                   description="Queries per image at which the distortion curve is read")
    evasion: EvasionSpec | None = Field(None, description="The adaptive attacker: every query randomly transformed "
                                                          "to evade a similarity detector (default: off)")

    @field_validator("checkpoints")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if value[0] < 1 or any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("checkpoints must be positive and strictly increasing, e.g. [100, 500, 1000]")
        return value

    @model_validator(mode="after")
    def _supported(self) -> QueryCraftingSpec:
        if self.norm not in self.norms:
            raise ValueError(f"{self.method} supports the norm(s) {', '.join(self.norms)}, not {self.norm!r}")
        if self.targeted not in self.targeting:
            raise ValueError(f"{self.method} is {'targeted' if self.targeting[0] else 'untargeted'} only: "
                             f"targeted must be {self.targeting[0]}")
        if self.targeted and self.target is None:
            raise ValueError("a targeted attack needs `target`: random, next, least_likely or fixed")
        if not self.targeted and (self.target is not None or self.target_class is not None):
            raise ValueError("target and target_class are for targeted attacks: set targeted to true")
        if (self.target == "fixed") != (self.target_class is not None):
            raise ValueError("give target_class exactly when target is 'fixed'")
        if self.target == "least_likely":
            raise ValueError(f"{self.method} trains no substitute, which least_likely targets need: choose random, "
                             "next or fixed")
        return self

    def engine_evasion(self) -> Evasion | None:
        """The engine's `Evasion` of this spec (None: off); every factory passes it to its attack."""
        if self.evasion is None:
            return None
        from bbrange.attacker.engine.query_attacks.evasion import Evasion

        return Evasion(self.evasion.transform, float(self.evasion.strength or 0.0))

    def label(self) -> str:
        evasion = f", evasion {self.evasion.transform} {self.evasion.strength:g}" if self.evasion else ""
        goal = f", targeted ({self.target})" if self.targeted else ""
        return f"{self.method} {self.norm.upper()}{goal}, ≤{self.max_queries_per_image:,} queries/image{evasion}"
