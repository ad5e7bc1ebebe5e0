"""The plug-in base: what an attack gets by default, and a query attack's place in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from bbrange.attacker.engine import (
    FGSM,
    Attack,
    BlackBoxAttack,
    CallableOracle,
    CraftingContext,
    EngineError,
    QueryCounter,
    run_blackbox_attack,
)


@dataclass(frozen=True)
class AskingAttack(Attack):
    """A decision-based attack's shape: no substitute, the oracle asked through the context's counter."""

    name: ClassVar[str] = "asking"
    targeted: ClassVar[bool] = False
    needs_substitute: ClassVar[bool] = False
    batch_size: int = 10

    def craft(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def noise(self, x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return x


def counter() -> QueryCounter:
    return QueryCounter(CallableOracle(lambda x: np.zeros(len(x), dtype=np.int64), (1, 4, 4), 3))


def test_the_defaults_untargeted_no_measures_one_size() -> None:
    attack = FGSM()
    context = CraftingContext(None, counter(), np.zeros((2, 1, 4, 4), np.float32), np.zeros(2, np.int64), 3, 0,
                              torch.device("cpu"))
    assert attack.choose_targets(context) is None and attack.size_sweep() == ()
    with pytest.raises(TypeError, match="query attack overrides craft_set"):
        attack.craft_set(context, None, lambda fraction: None)


def test_the_pipeline_refuses_a_query_attack_without_its_own_craft_set_before_any_query() -> None:
    c = counter()
    x = np.zeros((4, 1, 4, 4), np.float32)
    with pytest.raises(EngineError, match="query attack"):
        run_blackbox_attack(c, x, x, np.zeros(4, np.int64), BlackBoxAttack(crafting=AskingAttack()))
    assert c.total == 0
