"""The attack registry: what a plug-in may register, and when."""

from __future__ import annotations

from typing import Literal

import pytest

from bbrange.attacker.campaigns.spec.attacks import registry
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec


class LateCrafting(registry.CraftingSpec):
    method: Literal["late"]


def test_an_attack_registered_after_the_spec_was_built_is_refused() -> None:
    assert CampaignSpec.model_fields["crafting"] is not None  # the spec, and so its crafting union, is built
    with pytest.raises(RuntimeError, match="BBRANGE_ATTACK_PLUGINS"):
        registry.register_attack("late", LateCrafting, lambda spec: None)  # type: ignore[arg-type, return-value]


def test_plugin_modules_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.plugin_modules(" a.b, ,c ") == ["a.b", "c"]
    monkeypatch.setenv(registry.PLUGINS_ENV, "no_such_module_here")
    with pytest.raises(ImportError, match="no_such_module_here"):
        registry.load_attacks()


def test_an_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: (.*, )?fgsm, jsma"):  # plug-ins may register before or after
        registry.registered("deepfool")
