"""The toy plug-in's engine side: every feature brightened by δ (untargeted), with a measure of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.attack import Attack, CraftingContext
from bbrange.attacker.engine.evaluation import Distortion


@dataclass(frozen=True)
class BrightenMeasures:
    mean_shift: float
    substitute_changed: float  # share of examples whose substitute label the brightening changed

    def as_results(self) -> dict[str, Any]:
        return {"toy_mean_shift": round(self.mean_shift, 6), "toy_substitute_changed": self.substitute_changed}


@dataclass(frozen=True)
class Brighten(Attack):
    name: ClassVar[str] = "toy-brighten"
    targeted: ClassVar[bool] = False
    delta: float = 0.25
    batch_size: int = 50

    def craft(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        return (x + self.delta).clamp(0.0, 1.0)

    def noise(self, x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(x + rng.uniform(-self.delta, self.delta, size=x.shape), 0.0, 1.0).astype(np.float32)

    def measures(self, context: CraftingContext, x_adv: np.ndarray, targets: np.ndarray | None,
                 crafted: Distortion) -> BrightenMeasures:
        assert context.substitute is not None
        with torch.no_grad():
            before = context.substitute(torch.from_numpy(context.x).to(context.device)).argmax(1)
            after = context.substitute(torch.from_numpy(x_adv).to(context.device)).argmax(1)
        return BrightenMeasures(float((x_adv - context.x).mean()), float((before != after).float().mean()))
