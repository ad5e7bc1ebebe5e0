"""The hybrid: a decision-based search (HopSkipJump or Sign-OPT) started from the substitute's transferred
adversarial example where the oracle already misclassifies it, and from the search's own random start
otherwise.

The pipeline trains the substitute with Jacobian-based augmentation as for FGSM (`needs_substitute`, phase
"labelling"); `craft_set` crafts a start on it for every image (away from the oracle's clean label: FGSM at
`transfer_eps`, or the L2 walk of transfer_start.py), then runs the inner attack's search through `craft_by_queries`
from those starts, so per-image budgets, checkpoints and measures are the inner attack's. The search checks each
start with one query (its first) and falls back to its own initialisation where the oracle disagrees.

A transferred start is not free: its substitute cost the labelling queries. The measures report them per image
attacked (labelling total ÷ images, amortised over the set) and the distortion curve shifted by that many
queries, beside the inner attack's own per-image curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, cast

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.attack import Attack, CraftedSet, CraftingContext, CraftingProgress
from bbrange.attacker.engine.evaluation import Distortion
from bbrange.attacker.engine.fgsm import fgsm
from bbrange.attacker.engine.query_attacks.base import QueryAttack, SearchProgress
from bbrange.attacker.engine.query_attacks.budget import DecisionResult, PerImageQueries, distances
from bbrange.attacker.engine.query_attacks.crafting import craft_by_queries
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
from bbrange.attacker.engine.query_attacks.measures import QueryMeasures
from bbrange.attacker.engine.query_attacks.transfer_start import l2_walk
from bbrange.shared.devices import as_batch
from bbrange.shared.perturbations import Norm

AMORTISED = ("queries_per_image and distortion_by_queries count each image's search on the oracle only; the "
             "substitute its transferred start came from cost labelling_queries once for the whole set, which is "
             "amortised_labelling_queries_per_image (labelling ÷ images attacked) per image: "
             "distortion_by_queries_amortised is the same curve at those totals")


@dataclass(frozen=True)
class HybridDetails:
    """What the hybrid's `craft_set` hands to its `measures`: the search's result, and per image whether the
    oracle confirmed its transferred start and that start's distortion (the inner attack's norm)."""

    result: DecisionResult
    transfer_confirmed: np.ndarray  # (N,) bool; False also where the search never asked (budget spent)
    transfer_distortion: np.ndarray  # (N,)


@dataclass(frozen=True)
class HybridMeasures:
    """The inner attack's measures, with the substitute's labelling queries amortised over the images."""

    search: QueryMeasures
    labelling_queries: int
    images: int
    transfer_confirmed: float | None  # share of the images whose transferred start the oracle confirmed
    start: dict[str, Any]  # how the starts were crafted: {"method": "fgsm", "eps": ε} or {"method": "l2_walk", ...}

    @property
    def stop_reason(self) -> str | None:
        return self.search.stop_reason

    @property
    def amortised_per_image(self) -> float:
        return self.labelling_queries / self.images if self.images else 0.0

    def after_bad_queries(self, attack_queries_at_flag: int) -> dict[str, Any]:
        return self.search.after_bad_queries(attack_queries_at_flag)

    def as_results(self) -> dict[str, Any]:
        a = self.amortised_per_image
        curve = self.search.distortion_by_queries()
        return {
            **self.search.as_results(),
            "labelling_queries": self.labelling_queries,
            "amortised_labelling_queries_per_image": round(a, 6),
            "distortion_by_queries_amortised": {**curve, "queries": [round(c + a, 6) for c in curve["queries"]]},
            "transfer_start": self.start,
            "transfer_eps": self.start.get("eps"),
            "transfer_starts_confirmed": self.transfer_confirmed,
            "amortisation_note": AMORTISED,
        }


@dataclass(frozen=True)
class Hybrid(Attack):
    """A start crafted on the substitute (`start`: FGSM at `transfer_eps`, or the L2 walk stretched by `overshoot`,
    transfer_start.py), then `inner`'s search from it (untargeted)."""

    name: ClassVar[str] = "hybrid"
    targeted: ClassVar[bool] = False
    needs_substitute: ClassVar[bool] = True
    searches_oracle: ClassVar[bool] = True
    inner: QueryAttack = field(default_factory=HopSkipJump)
    transfer_eps: float = 0.3
    start: Literal["fgsm", "l2_walk"] = "fgsm"
    overshoot: float = 3.0  # the best of 1.5-4 on benchmarks/decision_hybrid.py's tuning split
    batch_size: int = 1000  # images per FGSM batch on the substitute

    def __post_init__(self) -> None:
        if self.inner.target is not None:
            raise ValueError("the hybrid is untargeted: its transferred start is only misclassified, not of a target")
        if self.inner.needs_substitute:
            raise ValueError(f"the hybrid's inner attack must be a decision-based search, not {self.inner.name}")
        if not 0.0 < self.transfer_eps <= 1.0:
            raise ValueError("transfer_eps must be in (0, 1]")
        if self.start not in ("fgsm", "l2_walk"):
            raise ValueError(f"unknown start {self.start!r}: fgsm or l2_walk")
        if not 1.0 <= self.overshoot <= 10.0:
            raise ValueError("overshoot must be in [1, 10]")

    @property
    def norm(self) -> Norm:
        return self.inner.norm

    @property
    def max_queries_per_image(self) -> int:
        return self.inner.max_queries_per_image

    def craft(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        raise TypeError("the hybrid asks the oracle in craft_set; its starts are crafted there (transfer_starts)")

    def transfer_starts(self, context: CraftingContext) -> np.ndarray:
        """The starts crafted on the substitute, pushed away from the oracle's label of each clean image."""
        if context.substitute is None:
            raise TypeError("the hybrid needs the substitute the pipeline trains (needs_substitute)")
        out = []
        for i in range(0, len(context.x), self.batch_size):
            xb = as_batch(context.x[i : i + self.batch_size], context.device)
            yb = torch.from_numpy(np.asarray(context.label_before[i : i + self.batch_size], np.int64)).to(context.device)
            moved = (fgsm(context.substitute, xb, self.transfer_eps, yb) if self.start == "fgsm" else
                     l2_walk(context.substitute, xb, yb, overshoot=self.overshoot))
            out.append(moved.cpu().numpy().astype(np.float32, copy=False))
        return np.concatenate(out) if out else context.x.copy()

    def craft_set(self, context: CraftingContext, targets: np.ndarray | None,
                  progress: CraftingProgress) -> CraftedSet:
        starts = self.transfer_starts(context)
        confirmed = np.zeros(len(context.x), bool)
        done = [0]  # images of the chunks searched so far (craft_by_queries searches them in order)

        def search(queries: PerImageQueries, chunk_starts: np.ndarray | None, rng: np.random.Generator,
                   chunk_progress: SearchProgress) -> None:
            assert chunk_starts is not None
            watch = _StartChecks(queries, chunk_starts)
            first, done[0] = done[0], done[0] + len(queries.x_clean)
            try:
                self.inner.search(cast(PerImageQueries, watch), chunk_starts, rng, chunk_progress)
            finally:
                confirmed[first : done[0]] = watch.confirmed

        crafted = craft_by_queries(context, None, search, norm=self.inner.norm,
                                   max_queries_per_image=self.inner.max_queries_per_image,
                                   checkpoints=self.inner.checkpoints, batch_size=self.inner.batch_size,
                                   progress=progress, starts=starts, evasion=self.inner.evasion)
        result = crafted.details
        assert isinstance(result, DecisionResult)
        details = HybridDetails(result, confirmed, distances(context.x, starts, self.inner.norm))
        return replace(crafted, details=details)

    def noise(self, x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.inner.noise(x, x_adv, rng)

    def measures(self, context: CraftingContext, x_adv: np.ndarray, targets: np.ndarray | None,
                 crafted: Distortion) -> HybridMeasures | None:
        details = context.details
        if not isinstance(details, HybridDetails):
            return None
        search = self.inner.measures(replace(context, details=details.result), x_adv, targets, crafted)
        if not isinstance(search, QueryMeasures):
            return None
        n = len(context.x)
        start = ({"method": "fgsm", "eps": self.transfer_eps} if self.start == "fgsm" else
                 {"method": "l2_walk", "overshoot": self.overshoot})
        return HybridMeasures(search, context.counter.used("labelling"), n,
                              float(details.transfer_confirmed.mean()) if n else None, start)


class _StartChecks:
    """The search's `PerImageQueries`, watched for its check of each start (a row equal to the image's start):
    which transferred examples the oracle confirmed. Everything else is the queries' own."""

    def __init__(self, queries: PerImageQueries, starts: np.ndarray) -> None:
        self._queries = queries
        self._starts = np.asarray(starts, np.float32).reshape(len(starts), -1)
        self._seen = np.zeros(len(starts), bool)
        self.confirmed = np.zeros(len(starts), bool)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queries, name)

    def ask(self, images: np.ndarray, x: np.ndarray) -> np.ndarray:
        answer = self._queries.ask(images, x)
        images = np.asarray(images, np.int64)
        look = np.flatnonzero(~self._seen[images])
        if len(look):
            rows = np.asarray(x, np.float32).reshape(len(images), -1)[look]
            hit = look[np.all(rows == self._starts[images[look]], axis=1)]
            self.confirmed[images[hit]] |= answer[hit]
            self._seen[images[hit]] = True
        return answer
