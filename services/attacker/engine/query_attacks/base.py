"""The base of decision-based attacks: a plug-in of the pipeline (attack.py) that needs no substitute and asks
the oracle itself, every image of the set advanced together through one `PerImageQueries`.

A subclass is a frozen dataclass of its settings that implements `search`: it drives `queries.ask` (and
`queries.offer`) until every image's budget is spent or the attack is done, and returns nothing: what it found
is what the oracle confirmed, read from `queries.result()`. It never labels through anything else.

`craft_set` (crafting.py) runs `search` over the set in chunks of `batch_size` images, every question counted
under the "attack" query phase; `measures` (measures.py) reads the distortion curve and the success at fixed
sizes from what the search found. A targeted attack sets `target` (and `target_class` for "fixed"): its
targets follow engine/target_classes.py, except "least_likely", which needs a substitute.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.attack import Attack, CraftedSet, CraftingContext, CraftingProgress
from bbrange.attacker.engine.evaluation import Distortion
from bbrange.attacker.engine.query_attacks.budget import DEFAULT_CHECKPOINTS, DecisionResult, PerImageQueries
from bbrange.attacker.engine.query_attacks.crafting import craft_by_queries
from bbrange.attacker.engine.query_attacks.evasion import Evasion
from bbrange.attacker.engine.query_attacks.measures import QueryMeasures, query_measures
from bbrange.attacker.engine.target_classes import choose_targets
from bbrange.attacker.engine.vocabulary import TargetChoice
from bbrange.shared.perturbations import Norm

SearchProgress = Callable[[float], None]


@dataclass(frozen=True)
class QueryAttack(Attack):
    """A decision-based attack: `norm` it minimises, `max_queries_per_image` each image may spend, and the
    `checkpoints` (queries per image) at which the distortion curve is read."""

    needs_substitute: ClassVar[bool] = False
    searches_oracle: ClassVar[bool] = True
    norms: ClassVar[tuple[Norm, ...]] = ("l2", "linf")  # the norms the attack supports
    norm: Norm = "l2"
    max_queries_per_image: int = 1000
    checkpoints: tuple[int, ...] = DEFAULT_CHECKPOINTS
    batch_size: int = 100  # images advanced together (each step's queries of all of them in one call)
    target: TargetChoice | None = None  # None: untargeted
    target_class: int | None = None  # target = "fixed"
    success_sizes: tuple[float, ...] | None = None  # sizes the success is read at (None: measures.SUCCESS_SIZES)
    evasion: Evasion | None = None  # the adaptive attacker: every query randomly transformed (evasion.py)

    def __post_init__(self) -> None:
        if self.norm not in self.norms:
            raise ValueError(f"{self.name} supports the norms {', '.join(self.norms)}, not {self.norm}")
        if self.target == "least_likely":
            raise ValueError(f"{self.name} has no substitute to find the least likely class: choose random, next or "
                             "fixed targets")

    def choose_targets(self, context: CraftingContext) -> np.ndarray | None:
        if self.target is None:
            return None
        return choose_targets(self.target, context.label_before, context.num_classes, seed=context.seed,
                              target_class=self.target_class)

    def craft_set(self, context: CraftingContext, targets: np.ndarray | None,
                  progress: CraftingProgress) -> CraftedSet:
        """`search` over the set, `batch_size` images at a time; a campaign budget spent mid-search stops it, every
        image keeping its best adversarial so far (the set's `stop_reason` says so)."""
        return craft_by_queries(context, targets, self.search, norm=self.norm,
                                max_queries_per_image=self.max_queries_per_image, checkpoints=self.checkpoints,
                                batch_size=self.batch_size, progress=progress, evasion=self.evasion)

    def measures(self, context: CraftingContext, x_adv: np.ndarray, targets: np.ndarray | None,
                 crafted: Distortion) -> QueryMeasures | None:
        """The distortion against queries and the success at fixed sizes beside noise of the same size."""
        if not isinstance(context.details, DecisionResult):
            return None
        return query_measures(context, context.details, targets, self.max_queries_per_image, self.success_sizes,
                              chunk=self.batch_size)

    @abstractmethod
    def search(self, queries: PerImageQueries, starts: np.ndarray | None, rng: np.random.Generator,
               progress: SearchProgress) -> None:
        """Find, for every image of `queries`, an adversarial input as close as the budget allows.

        `starts` (same shape as the images, or None) are starting points believed adversarial (a targeted
        attack's images of the target class, a transferred example): the search checks each one with a query
        before it relies on it, and falls back to its own initialisation where the oracle disagrees."""

    def craft(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        raise TypeError(f"{self.name} is a query attack: it asks the oracle in craft_set, not a substitute")

    def noise(self, x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random noise of the same norm as each found perturbation: a uniformly random direction scaled to the
        L2 size, or random signs at the L∞ size; clipped to the valid range like the attack's own inputs."""
        n = len(x)
        delta = (x_adv - x).reshape(n, -1).astype(np.float64)
        if self.norm == "l2":
            size = np.sqrt((delta * delta).sum(1, keepdims=True))
            direction = rng.standard_normal(delta.shape)
            direction /= np.maximum(np.sqrt((direction * direction).sum(1, keepdims=True)), 1e-12)
            moved = direction * size
        else:
            moved = rng.choice([-1.0, 1.0], size=delta.shape) * np.abs(delta).max(1, keepdims=True)
        out: np.ndarray = np.clip(x.reshape(n, -1) + moved, 0.0, 1.0).reshape(x.shape).astype(np.float32)
        return out
