"""The crafting family: every attack is an `Attack` (as torchattacks' `Attack`), crafted white-box on the
substitute the black-box attack trained, then sent to the oracle.

An attack is a small frozen value (its settings) with a `craft` method, so a pipeline, a campaign spec
and a benchmark can name the same attack and get the same examples.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
from torch import nn


class Attack(ABC):
    """Adversarial examples for a batch of images, crafted on `model`.

    `targeted` attacks need one target class per image and succeed when the oracle answers it;
    untargeted ones succeed when the oracle's label differs from the true one. `batch_size` is how
    many images one `craft` call should be given (the pipeline splits a set into such batches).
    """

    name: ClassVar[str]
    targeted: ClassVar[bool]
    batch_size: int

    @abstractmethod
    def craft(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """x* for every x, same shape and device as x."""

    @abstractmethod
    def noise(self, x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The honest baseline of this attack: x moved by random noise of the same size as x_adv moved it.

        A transfer rate means something only above what this noise alone does to the same oracle on
        the same images (on some oracles random ±ε noise is misclassified most of the time)."""
