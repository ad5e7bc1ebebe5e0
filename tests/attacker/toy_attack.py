"""A toy attack that lives outside the service, as a plug-in: its spec model and its registry entry
(torch-free, imported by the API and the worker through BBRANGE_ATTACK_PLUGINS=tests.attacker.toy_attack);
its engine class is in toy_attack_engine.py, imported by the worker only when it builds the attack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from bbrange.attacker.campaigns.spec.attacks.registry import CraftingSpec, register_attack

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class ToyCrafting(CraftingSpec):
    method: Literal["toy-brighten"]
    delta: float = Field(0.25, gt=0, le=1, description="How much every feature is brightened")


def engine_toy(spec: ToyCrafting) -> Attack:
    from tests.attacker.toy_attack_engine import Brighten

    return Brighten(delta=spec.delta)


register_attack("toy-brighten", ToyCrafting, engine_toy)
