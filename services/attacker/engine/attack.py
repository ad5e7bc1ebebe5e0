"""The crafting family: every attack is an `Attack` (as torchattacks' `Attack`), a plug-in of the pipeline.

An attack is a small frozen value (its settings) that owns everything in which attacks differ, so that the
pipeline names none of them:

    choose_targets  which class each image is pushed to (targeted attacks; untargeted ones: None)
    craft_set       the adversarial examples of a set; by default `craft` on the substitute, in batches (a query
                    attack returns a `CraftedSet`: the examples with what its search found, read by `measures`)
    noise           the honest baseline: random noise of the same size as the attack's
    measures        what the attack measures beyond transfer (JSMA: A(X, t), H(s, t)), for the results
    size_sweep      the same attack at further sizes from the one substitute (FGSM: several ε)

How an attack spends queries: a transfer attack (`needs_substitute = True`, all of today's) crafts white-box
on the substitute the pipeline trained, and its examples cost the oracle evaluation queries only. A query
attack (decision-based: HopSkipJump and its kind) sets `needs_substitute = False` and overrides `craft_set`
to ask the oracle itself through `context.counter`, a `QueryCounter` that books and caps every query.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from bbrange.shared.devices import as_batch

if TYPE_CHECKING:
    from bbrange.attacker.engine.evaluation import Distortion
    from bbrange.attacker.engine.oracles import QueryCounter

CraftingProgress = Callable[[float], None]
# craft(model, x, targets): x* for a batch, as `Attack.craft`
CraftBatch = Callable[[nn.Module, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class CraftingContext:
    """What an attack may use to craft a set: the substitute (None for a query attack), the oracle behind its
    query counter, the images with the oracle's labels of them, and the campaign's seed and device."""

    substitute: nn.Module | None
    counter: QueryCounter
    x: np.ndarray
    label_before: np.ndarray  # the oracle's labels of the clean images (never the true ones)
    num_classes: int
    seed: int
    device: torch.device
    # What `craft_set` handed over beside the examples (a `CraftedSet`'s details), for `measures`
    details: Any = None
    noise_baseline: bool = True  # whether the campaign measures random noise (an attack's measures may too)


@dataclass(frozen=True)
class CraftedSet:
    """What a query attack's `craft_set` returns: the examples, float32 on the CPU; the oracle's labels of them
    where the search kept them (-1 where it knows only that the label is adversarial); the per-image account
    the pipeline hands to `measures` through `CraftingContext.details`; why the search stopped early; and the
    queries each image cost."""

    x_adv: np.ndarray
    labels: np.ndarray | None = None
    details: Any = None
    stop_reason: str | None = None
    queries: np.ndarray | None = None  # per image, the queries its search spent


class Measures(Protocol):
    """An attack's own measures of its crafted set (typed for the library user), and their JSON-able form,
    whose keys join a campaign's results."""

    def as_results(self) -> dict[str, Any]: ...


@runtime_checkable
class FlagAwareMeasures(Protocol):
    """Measures that can say what the attack bought after the oracle flagged its key (a query attack's)."""

    def after_bad_queries(self, attack_queries_at_flag: int) -> dict[str, Any]: ...


class Attack(ABC):
    """Adversarial examples for a batch of images, crafted on `model`.

    `targeted` attacks need one target class per image and succeed when the oracle answers it;
    untargeted ones succeed when the oracle's label differs from the true one. `batch_size` is how
    many images one `craft` call should be given (`craft_set` splits a set into such batches).
    """

    name: ClassVar[str]
    targeted: ClassVar[bool]
    needs_substitute: ClassVar[bool] = True  # False: a query attack, which asks the oracle in `craft_set`
    # True: `craft_set` searches on the oracle (phase "attack"), after the substitute if it needs one (the hybrid)
    searches_oracle: ClassVar[bool] = False
    batch_size: int

    @abstractmethod
    def craft(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """x* for every x, same shape and device as x."""

    @abstractmethod
    def noise(self, x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The honest baseline of this attack: x moved by random noise of the same size as x_adv moved it.

        A transfer rate means something only above what this noise alone does to the same oracle on
        the same images (on some oracles random ±ε noise is misclassified most of the time)."""

    def choose_targets(self, context: CraftingContext) -> np.ndarray | None:
        """One target class per image for a targeted attack; None for an untargeted one."""
        return None

    def craft_set(self, context: CraftingContext, targets: np.ndarray | None,
                  progress: CraftingProgress) -> np.ndarray | CraftedSet:
        """Every x*, float32 on the CPU: `craft` on the substitute, `batch_size` images at a time."""
        return craft_in_batches(self.craft, context, targets, progress, self.batch_size)

    def measures(self, context: CraftingContext, x_adv: np.ndarray, targets: np.ndarray | None,
                 crafted: Distortion) -> Measures | None:
        """The attack's own measures of the crafted set, beyond transfer (None: it has none)."""
        return None

    def size_sweep(self) -> tuple[tuple[float, Attack], ...]:
        """(size, attack) of the headline and of each further size to craft from the one substitute, each
        measured beside its own noise baseline at evaluation queries only; empty for one size."""
        return ()


def craft_in_batches(craft: CraftBatch, context: CraftingContext, targets: np.ndarray | None,
                     progress: CraftingProgress, batch_size: int) -> np.ndarray:
    """Every x* of the context's set, float32 on the CPU: `craft` on the substitute, `batch_size` images at a time."""
    if context.substitute is None:
        raise TypeError("this attack crafts on a substitute; a query attack overrides craft_set")
    x, out = context.x, []
    for start in range(0, len(x), batch_size):
        progress(start / len(x))
        xb = as_batch(x[start : start + batch_size], context.device)
        tb = None if targets is None else torch.from_numpy(targets[start : start + batch_size]).to(context.device)
        out.append(craft(context.substitute, xb, tb).detach().cpu().numpy().astype(np.float32, copy=False))
    progress(1.0)
    return np.concatenate(out) if out else np.zeros_like(x)


def sizes_of(attack: Any, eps: float, more_sizes: tuple[float, ...]) -> tuple[tuple[float, Attack], ...]:
    """An `Attack.size_sweep`: (eps, attack) first, then the same attack at each further size, for a dataclass attack
    whose size is its `eps` field and whose further sizes are `more_sizes`; empty without further sizes."""
    if not more_sizes:
        return ()
    return ((eps, attack), *((e, replace(attack, eps=e, more_sizes=())) for e in more_sizes))
