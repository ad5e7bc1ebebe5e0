"""The campaign spec is validated in the API process, which never loads the engine (nor torch): the few
engine facts it repeats must stay equal to the engine's."""

from __future__ import annotations

from typing import get_args

from bbrange.attacker.campaigns.spec import campaign as spec
from bbrange.attacker.engine import DEFAULT_STEP_SIZE, SUBSTITUTE_PRESETS, TARGET_CHOICES, SearchDomain


def test_preset_names_default_step_and_jsma_choices_match_the_engine() -> None:
    assert set(get_args(spec.SubstitutePresetName)) == set(SUBSTITUTE_PRESETS)
    assert spec.DEFAULT_STEP_SIZE == DEFAULT_STEP_SIZE
    fields = spec.JsmaCrafting.model_fields
    assert set(get_args(fields["target"].annotation)) == set(TARGET_CHOICES)
    assert set(get_args(fields["search_domain"].annotation)) == set(get_args(SearchDomain))
