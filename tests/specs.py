"""The tests' small campaign, on the one spec builder (bbrange.attacker.campaigns.spec.builder): a test changes it
by naming what differs."""

from __future__ import annotations

from typing import Any

from bbrange.attacker.campaigns.spec import builder

DEFAULT_ORACLE = "http://127.0.0.1:8000"  # the attacker's default allowlist admits it


def campaign_spec(**overrides: Any) -> dict[str, Any]:
    """S0 = 30, ρ = 2, λ = 0.1, two training epochs per substitute epoch, 60 evaluation images, FGSM ε = 0.3,
    against DEFAULT_ORACLE with the key "key" (none where the target gives `api_keys`). A dict given for target,
    substitute or evaluation is merged into the section; any other value replaces its key (an unknown key is kept,
    for tests of what is refused)."""
    target = overrides.pop("target", {})
    merged = isinstance(target, dict)
    default = builder.bbrange_target(DEFAULT_ORACLE, "key")
    if merged and "api_keys" in target:
        del default["api_key"]
    spec = builder.campaign_spec({**default, **(target if merged else {})},
                                 s0=30, rho=2, lam=0.1, train_epochs=2, eval_size=60, **overrides)
    if not merged:
        spec["target"] = target
    return spec
