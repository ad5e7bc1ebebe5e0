"""The engine's torch-free face holds the one definition of what a campaign spec is validated with; the
engine's own modules take their words from it."""

from __future__ import annotations

from typing import get_args

from bbrange.attacker.campaigns.spec.attacks.registry import load_attacks
from bbrange.attacker.campaigns.spec.substitute import Substitute
from bbrange.attacker.engine import ENGINE_ATTACKS, SUBSTITUTE_PRESETS, SubstituteConfig, vocabulary


def test_the_presets_and_the_step_size_are_the_vocabulary_s() -> None:
    assert tuple(SUBSTITUTE_PRESETS) == vocabulary.SUBSTITUTE_PRESET_NAMES
    assert SubstituteConfig().lam == Substitute().lam == vocabulary.DEFAULT_STEP_SIZE
    assert set(get_args(Substitute.model_fields["preset"].annotation)) == set(vocabulary.SUBSTITUTE_PRESET_NAMES)


def test_epoch_set_sizes_double_or_add_kappa_from_sigma_on() -> None:
    assert vocabulary.epoch_set_sizes(150, 3, False, 0, 400) == [150, 300, 600, 1200]
    assert vocabulary.epoch_set_sizes(150, 4, True, 2, 100) == [150, 300, 600, 700, 800]


TRANSFER = ("fgsm", "jsma", "pgd", "ifgsm", "mifgsm", "difgsm", "rfgsm")


def test_every_built_in_spec_model_builds_the_engine_attack_of_its_name() -> None:
    attacks = load_attacks()
    assert set(TRANSFER) <= set(attacks)
    for method in TRANSFER:
        entry = attacks[method]
        built = entry.engine_attack(entry.spec.model_validate({"method": method}))
        assert isinstance(built, ENGINE_ATTACKS[method]) and built.name == method


def test_a_spec_s_settings_reach_the_engine_attack() -> None:
    entry = load_attacks()["mifgsm"]
    built = entry.engine_attack(entry.spec.model_validate({"method": "mifgsm", "eps": [2.0, 1.0], "norm": "l2",
                                                           "loss": "margin", "momentum": 0.5, "steps": 7}))
    assert (built.eps, built.more_sizes, built.norm, built.loss, built.momentum, built.steps) == (
        2.0, (1.0,), "l2", "margin", 0.5, 7)
