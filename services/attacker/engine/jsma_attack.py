"""JSMA as a plug-in of the pipeline: targeted, with the rule that picks each image's target class, its noise
baseline, and the thesis's measures A(X, t) and H(s, t) of the crafted set on the substitute (the algorithm
itself is jsma.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.attack import Attack, CraftingContext
from bbrange.attacker.engine.evaluation import Distortion, adversarial_distance, hardness_by_distortion
from bbrange.attacker.engine.jsma import jsma
from bbrange.attacker.engine.target_classes import choose_targets
from bbrange.attacker.engine.vocabulary import SearchDomain, TargetChoice
from bbrange.shared.devices import as_batch


@dataclass(frozen=True)
class JsmaMeasures:
    """The JSMA thesis's A(X, t) and H(s, t), measured on the substitute (white-box, where they are defined)."""

    adversarial_distance: np.ndarray  # A(X, t) per example: 1 − share of features with a positive saliency
    hardness: np.ndarray  # (C, C) H(s, t) over Υ_k = Υ·k/5, k = 1..5; NaN where no sample
    substitute_success: np.ndarray  # per example: the substitute labels it as its target

    def as_results(self) -> dict[str, Any]:
        return {"mean_adversarial_distance": float(self.adversarial_distance.mean()),
                "hardness": [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in self.hardness]}


@dataclass(frozen=True)
class JSMA(Attack):
    """Targeted JSMA (θ, Υ, Γ at the start) with the rule that picks each image's target class."""

    name: ClassVar[str] = "jsma"
    targeted: ClassVar[bool] = True
    theta: float = 1.0
    upsilon: float = 0.145
    search_domain: SearchDomain = "all"
    target: TargetChoice = "random"
    target_class: int | None = None
    batch_size: int = 100

    def noise(self, x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """As many features as JSMA changed in each image, chosen at random, saturated in θ's direction."""
        flat = x.reshape(len(x), -1).copy()
        changed = (x_adv.reshape(len(x), -1) != flat).sum(1)
        value = 1.0 if self.theta > 0 else 0.0
        for i, k in enumerate(changed):
            flat[i, rng.choice(flat.shape[1], size=int(k), replace=False)] = value
        return flat.reshape(x.shape).astype(np.float32)

    def craft(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if targets is None:
            raise ValueError("JSMA is targeted: give one target class per image")
        return jsma(model, x, targets, theta=self.theta, max_distortion=self.upsilon,
                    search_domain=self.search_domain, batch_size=self.batch_size).x_adv

    def choose_targets(self, context: CraftingContext) -> np.ndarray | None:
        return choose_targets(self.target, context.label_before, context.num_classes, seed=context.seed,
                              target_class=self.target_class, model=context.substitute, x=context.x,
                              device=context.device)

    def measures(self, context: CraftingContext, x_adv: np.ndarray, targets: np.ndarray | None,
                 crafted: Distortion) -> JsmaMeasures | None:
        model, x, device = context.substitute, context.x, context.device
        if targets is None or model is None or not len(x):
            return None
        target_t = torch.from_numpy(targets).to(device)
        with torch.no_grad():
            reached = torch.cat([model(as_batch(x_adv[i : i + 1000], device)).argmax(1)
                                 for i in range(0, len(x_adv), 1000)]) == target_t
        a = np.concatenate([adversarial_distance(model, as_batch(x[i : i + 100], device), target_t[i : i + 100],
                                                 theta=self.theta) for i in range(0, len(x), 100)])
        upsilons = self.upsilon * np.arange(1, 6) / 5
        success = reached.cpu().numpy()
        h = hardness_by_distortion(context.label_before, targets, success, crafted.l0, context.num_classes, upsilons)
        return JsmaMeasures(a, h, success)
