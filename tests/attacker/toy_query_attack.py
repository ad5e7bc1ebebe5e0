"""The toy query attack as a campaign plug-in (BBRANGE_ATTACK_PLUGINS=tests.attacker.toy_query_attack): its spec
is a `QueryCraftingSpec` that supports L2 only; its engine class is toy_query_attack_engine.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from bbrange.attacker.campaigns.spec.attacks.query import QueryCraftingSpec
from bbrange.attacker.campaigns.spec.attacks.registry import register_attack

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack


class ToyQueryCrafting(QueryCraftingSpec):
    norms: ClassVar[tuple[str, ...]] = ("l2",)
    method: Literal["toy-query"]


def engine_toy_query(spec: ToyQueryCrafting) -> Attack:
    from tests.attacker.toy_query_attack_engine import NoiseThenBisect

    return NoiseThenBisect(norm="l2", max_queries_per_image=spec.max_queries_per_image,
                           checkpoints=tuple(spec.checkpoints), target=spec.target, target_class=spec.target_class,
                           batch_size=16)


register_attack("toy-query", ToyQueryCrafting, engine_toy_query)
