"""What the gradient transfer attacks' specs share (PGD, I-FGSM, MI-FGSM, DI-FGSM, R+FGSM register subclasses):
ε or a list of sizes in the norm the attack supports, the loss it ascends, and the step schedule's bounds, refused
with a reason a person can act on before any worker is involved."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from bbrange.attacker.campaigns.spec.attacks.sized import MAX_SIZES, SIZES_NOTE, SizedCrafting
from bbrange.attacker.engine.vocabulary import CraftingLoss, Norm

MAX_L2 = 64.0  # an L2 ε beyond the diagonal of any input here (GTSRB's [0, 1]^3072: 55.4) means nothing
MAX_STEPS = 1_000
Size = Annotated[float, Field(gt=0, le=MAX_L2)]
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS, description="T: gradient steps per image")]
StepSize = Annotated[float, Field(gt=0, le=MAX_L2, description="α: the size of each step, in the attack's norm")]
Momentum = Annotated[float, Field(ge=0, le=10, description="μ: the decay of the accumulated gradient (Dong et al.: "
                                                            "1.0; 0 follows each step's own gradient)")]
NORM_NAMES = {"linf": "L∞", "l2": "L2"}


class GradientCrafting(SizedCrafting):
    """A subclass sets `norms` (those its paper defines) and `title`, and adds its own settings."""

    norms: ClassVar[tuple[Norm, ...]] = ("linf", "l2")
    title: ClassVar[str]
    eps: Size | Annotated[list[Size], Field(min_length=1, max_length=MAX_SIZES)] = Field(
        0.3, description=f"ε: the size of the perturbation in `norm` (L∞ at most 1); {SIZES_NOTE}")
    norm: Norm = Field("linf", description="linf (each feature moves at most ε) or l2 (the whole move is at most ε "
                                           "long); each attack says which it supports")
    loss: CraftingLoss = Field("ce", description="What is ascended on the substitute: ce (cross-entropy of its own "
                                                 "label) or margin (Carlini & Wagner: best other logit − own logit)")

    @model_validator(mode="after")
    def _size_in_norm(self) -> GradientCrafting:
        if self.norm not in self.norms:
            raise ValueError(f"{self.method} supports the norm(s) {', '.join(self.norms)}, not {self.norm!r}")
        if self.norm == "linf" and max(self.sizes()) > 1:
            raise ValueError("an L∞ ε is at most 1, the whole range of a feature; use norm l2 for larger sizes")
        return self

    def engine_settings(self) -> dict[str, Any]:
        """The settings every engine gradient attack takes: the headline ε, the further sizes, the norm, the loss."""
        first, *more = self.sizes()
        return {"eps": first, "more_sizes": tuple(more), "norm": self.norm, "loss": self.loss}

    def label(self) -> str:
        return f"{self.title} {NORM_NAMES[self.norm]} {self.sizes_label()}, {self.loss}"
