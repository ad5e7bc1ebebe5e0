"""Perturbations as both services name them, without torch (the attacker API validates specs with these words):
the two norms a perturbation's size is measured in, random noise of a given size in each (the honest baseline
every attack is read against), and the settings of the adversarial examples a model is trained against (an
oracle's defended recipe, or an attacker's adversarially trained substitute; shared/adversarial.py makes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

Norm = Literal["l2", "linf"]
NORMS: tuple[Norm, ...] = get_args(Norm)

# FGSM (Goodfellow et al., ICLR 2015) or PGD from a random start (Madry et al., ICLR 2018).
TrainingAttackMethod = Literal["fgsm", "pgd"]
TRAINING_ATTACK_METHODS: tuple[TrainingAttackMethod, ...] = get_args(TrainingAttackMethod)


def noise_of_size(x: np.ndarray, size: float, norm: Norm, rng: np.random.Generator, *, clip_min: float = 0.0,
                  clip_max: float = 1.0) -> np.ndarray:
    """x moved by random noise of exactly `size` in `norm`, then clipped: random ±size on every feature (L∞, the
    same step as FGSM in a direction that knows nothing), or a uniformly random direction of L2 length `size`."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    if norm == "l2":
        direction = rng.standard_normal((n, int(np.prod(x.shape[1:]))))
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
        moved = x.reshape(n, -1) + direction * size
        return np.clip(moved, clip_min, clip_max).reshape(x.shape).astype(np.float32)
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=x.shape)
    return np.clip(x + size * signs, clip_min, clip_max).astype(np.float32)


@dataclass(frozen=True)
class TrainingAttack:
    """The adversarial examples a model is trained against, with the oracle's labels or the true ones.

    FGSM: x + ε·sgn(∇x J) (Goodfellow et al., 2015). PGD: `steps` L∞ steps of `step_size` from a uniformly random
    start in the ε-ball, each projected back into it (Madry et al., 2018: 40 steps of 0.01 at ε = 0.3 on MNIST;
    the default here is their robustness library's step 2.5·ε/steps, for fewer steps). The loss is
    `clean_weight`·J(x) + (1 − clean_weight)·J(x_adv): 0.5 is Goodfellow et al.'s mix, 0 Madry et al.'s
    adversarial examples only.
    """

    method: TrainingAttackMethod = "fgsm"
    eps: float = 0.3
    steps: int = 10  # PGD only
    step_size: float | None = None  # PGD only; None: 2.5·ε/steps
    clean_weight: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.eps <= 1.0:
            raise ValueError(f"ε must be in (0, 1], got {self.eps}")
        if self.steps < 1 or (self.step_size is not None and self.step_size <= 0):
            raise ValueError("PGD needs at least one step of a positive size")
        if not 0.0 <= self.clean_weight < 1.0:
            raise ValueError(f"clean_weight must be in [0, 1), got {self.clean_weight}")

    @property
    def pgd_step(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def describe(self) -> str:
        """What a model card or a report says of it, e.g. "PGD ε=0.3, 10 steps of 0.075 from a random start"."""
        what = (f"FGSM ε={self.eps:g}" if self.method == "fgsm" else
                f"PGD ε={self.eps:g}, {self.steps} steps of {self.pgd_step:g} from a random start")
        if self.clean_weight != 0.5:
            what += f", clean weight {self.clean_weight:g}"
        return what
