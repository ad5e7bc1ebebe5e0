"""Transfer at several perturbation sizes from one substitute (an attack's `size_sweep`): each further ε costs
only evaluation queries (the adversarial examples, then the same images moved by random noise of that size),
no labelling.

The pipeline measures its own attack first (the headline figures and the samples); this module measures
the further sizes after it, in the order given, each beside its own noise baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.attack import Attack, CraftedSet, CraftingContext
from bbrange.attacker.engine.errors import QueryPhase
from bbrange.attacker.engine.evaluation import TransferReport, distortion, summarise
from bbrange.attacker.engine.oracles import QueryCounter

Evaluate = Callable[[QueryCounter, np.ndarray, QueryPhase], tuple[np.ndarray, str | None]]


@dataclass(frozen=True)
class SizedReport:
    """The transfer report of an attack at one size ε (rates over the examples the oracle labelled)."""

    eps: float
    report: TransferReport


def transfer_at_sizes(counter: QueryCounter, model: nn.Module, x_eval: np.ndarray, y_eval: np.ndarray,
                      label_before: np.ndarray, attacks: tuple[tuple[float, Attack], ...], *, noise_baseline: bool, seed: int,
                      device: torch.device, evaluate: Evaluate) -> tuple[list[SizedReport], str | None]:
    """The attack at each (size, attack) of `attacks` on the substitute `model`, labelled by the oracle with its noise baseline.

    A budget that runs out keeps the sizes measured so far (the last one over the examples it labelled)
    and stops there, with the reason."""
    reports: list[SizedReport] = []
    for i, (eps, attack) in enumerate(attacks):
        context = CraftingContext(model, counter, x_eval, label_before, counter.num_classes, seed, device,
                                  noise_baseline=noise_baseline)
        crafted = attack.craft_set(context, None, lambda fraction: None)
        x_adv = crafted.x_adv if isinstance(crafted, CraftedSet) else crafted
        label_after, stop_reason = evaluate(counter, x_adv, "evaluation")
        n = len(label_after)
        label_noise = None
        if noise_baseline and stop_reason is None:
            # A generator of its own per size, so that the headline's noise is the same with or without sizes.
            x_noise = attack.noise(x_eval[:n], x_adv[:n], np.random.default_rng([seed, i + 1]))
            label_noise, stop_reason = evaluate(counter, x_noise, "baseline")
        if n:
            report = summarise(label_after, y_eval, clean_oracle_labels=label_before,
                               distortions=distortion(x_eval[:n], x_adv[:n]), queries=n, noise_labels=label_noise)
            reports.append(SizedReport(eps, report))
        if stop_reason is not None:
            return reports, f"at ε={eps:g}: {stop_reason}"
    return reports, None
