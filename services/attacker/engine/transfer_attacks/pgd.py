"""PGD (Madry et al., ICLR 2018) and I-FGSM (Kurakin et al., ICLR 2017 workshop: the basic iterative method): T
steps of α along the ascent direction of the loss, each projected back into the ε-ball and [0, 1]; PGD starts
from a uniformly random point of the ball, I-FGSM from the image itself. L∞ (sgn of the gradient) or L2 (the
gradient over its L2 norm). The loop is iterative.py's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from bbrange.attacker.engine.transfer_attacks.iterative import GradientAttack, Steps
from bbrange.shared.adversarial import random_start


def kurakin_steps(eps: float) -> int:
    """Kurakin et al.'s iteration count for an L∞ ε in [0, 1]: min(ε + 4, 1.25·ε) in 0..255 intensity units
    (80 at ε = 0.3), with steps of one intensity level, 1/255: enough to reach the edge of the ball and move on it."""
    e = eps * 255
    return max(1, math.floor(min(e + 4, 1.25 * e)))


def l2_step(eps: float, steps: int) -> float:
    """The L2 step when none is given: 2.5·ε/T (Madry et al.'s robustness library), which crosses the ball in a
    fraction of the steps and leaves the rest to move along its surface."""
    return 2.5 * eps / steps


@dataclass(frozen=True)
class PGD(GradientAttack):
    """Madry et al.'s MNIST adversary: ε = 0.3, 40 steps of α = 0.01 (L∞) from a random start uniform in the ball.
    Unset, α is ε/30 for L∞ (their 0.01 at 0.3, scaled with ε) and 2.5·ε/T for L2."""

    name: ClassVar[str] = "pgd"
    steps: int = 40
    step_size: float | None = None

    def schedule(self) -> Steps:
        alpha = self.step_size or (self.eps / 30 if self.norm == "linf" else l2_step(self.eps, self.steps))

        def start(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return random_start(x, self.eps, self.norm, generator, self.clip_min, self.clip_max)

        return Steps(self.steps, alpha, start)


@dataclass(frozen=True)
class IFGSM(GradientAttack):
    """Kurakin et al.'s basic iterative method, from the image itself: unset, L∞ takes their α = 1/255 and
    min(ε·255 + 4, 1.25·ε·255) steps (80 at ε = 0.3); L2 (not theirs) takes 10 steps, the count Tramèr et al.'s and
    Dong et al.'s transfer comparisons give I-FGSM, of 2.5·ε/T."""

    name: ClassVar[str] = "ifgsm"
    steps: int | None = None
    step_size: float | None = None

    def schedule(self) -> Steps:
        if self.norm == "linf":
            return Steps(self.steps or kurakin_steps(self.eps), self.step_size or 1 / 255)
        steps = self.steps or 10
        return Steps(steps, self.step_size or l2_step(self.eps, steps))

