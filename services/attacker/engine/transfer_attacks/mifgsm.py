"""MI-FGSM (Dong et al., CVPR 2018, "Boosting adversarial attacks with momentum"): I-FGSM whose step follows an
accumulated gradient, g ← μ·g + ∇/‖∇‖₁, which stabilises the direction across steps and transfers better than
the plain iterates. The paper's settings: μ = 1.0, T = 10 steps of α = ε/T from the image itself; L∞ (x + α·sgn(g))
and L2 (x + α·g/‖g‖₂), both theirs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bbrange.attacker.engine.transfer_attacks.iterative import GradientAttack, Steps


@dataclass(frozen=True)
class MIFGSM(GradientAttack):
    name: ClassVar[str] = "mifgsm"
    momentum: float = 1.0
    steps: int = 10
    step_size: float | None = None  # None: ε/T

    def schedule(self) -> Steps:
        return Steps(self.steps, self.step_size or self.eps / self.steps, momentum=self.momentum)
