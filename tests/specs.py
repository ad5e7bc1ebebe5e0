"""The one builder of campaign specs for tests: a small campaign that any test changes by naming what differs."""

from __future__ import annotations

import copy
from typing import Any

DEFAULT_ORACLE = "http://127.0.0.1:8000"  # the attacker's default allowlist admits it
MERGED_SECTIONS = ("target", "substitute", "evaluation")  # the others (initial_set, crafting) are unions: replaced whole

_SMALL: dict[str, Any] = {
    "target": {"oracle_url": DEFAULT_ORACLE, "model": "mnist", "api_key": "key"},
    "dataset": "mnist",
    "initial_set": {"kind": "dataset", "split": "test", "offset": 0, "size": 30},
    "substitute": {"preset": "papernot-mnist", "rho": 2, "lam": 0.1, "training": {"epochs": 2}},
    "crafting": {"method": "fgsm", "eps": 0.3},
    "evaluation": {"split": "test", "size": 60},
    "seed": 0,
}


def campaign_spec(**overrides: Any) -> dict[str, Any]:
    """S0 = 30, ρ = 2, two training epochs per substitute epoch, 60 evaluation images, FGSM ε = 0.3, against
    DEFAULT_ORACLE with the key "key". A dict given for target, substitute or evaluation is merged into the
    section; any other value replaces its key (an unknown key is kept, for tests of what is refused)."""
    spec = copy.deepcopy(_SMALL)
    for key, value in overrides.items():
        if key in MERGED_SECTIONS and isinstance(value, dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec
