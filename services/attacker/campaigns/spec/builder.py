"""Campaign specs as JSON dicts, built from a few knobs: the one place the tests, the benchmarks, the CLI, the
demo and the smoke run write a spec, so that a change to the spec's shape is made here once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bbrange.attacker.engine.vocabulary import DEFAULT_STEP_SIZE

# Sections merged into the defaults key by key; every other one (initial_set, crafting: unions) is replaced whole.
MERGED_SECTIONS = ("target", "substitute", "evaluation")


def bbrange_target(oracle_url: str, api_key: str | Sequence[str], model: str = "mnist") -> dict[str, Any]:
    """A bbrange oracle's model, spent through one API key, or through several taking turns (a list of two or
    more: `api_keys`)."""
    if isinstance(api_key, str):
        return {"oracle_url": oracle_url, "model": model, "api_key": api_key}
    keys = list(api_key)
    return {"oracle_url": oracle_url, "model": model, **({"api_keys": keys} if len(keys) > 1 else {"api_key": keys[0]})}


def fgsm(eps: float | list[float] = 0.3) -> dict[str, Any]:
    """FGSM at one ε, or at several from one substitute (the first the headline)."""
    sizes = [eps] if isinstance(eps, int | float) else list(eps)
    return {"method": "fgsm", "eps": sizes[0] if len(sizes) == 1 else sizes}


def jsma(theta: float = 1.0, upsilon: float = 0.145, target: str = "random",
         target_class: int | None = None) -> dict[str, Any]:
    return {"method": "jsma", "theta": theta, "upsilon": upsilon, "target": target, "target_class": target_class}


def gradient_attack(method: str, eps: float | list[float] = 0.3, norm: str = "linf", loss: str = "ce",
                    **settings: Any) -> dict[str, Any]:
    """A gradient transfer attack (pgd, ifgsm, mifgsm, difgsm, rfgsm) at one ε or several, with its own settings."""
    return {"method": method, "eps": eps, "norm": norm, "loss": loss, **settings}


def substitute_presets(preset: str | Sequence[str]) -> dict[str, Any]:
    """The substitute section's architecture: one preset, or an ensemble of several (`presets`)."""
    names = [preset] if isinstance(preset, str) else list(preset)
    return {"preset": names[0]} if len(names) == 1 else {"presets": names}


def campaign_spec(target: Mapping[str, Any], *, dataset: str = "mnist", s0: int = 150, s0_offset: int = 0,
                  preset: str | Sequence[str] | None = None, rho: int = 6, lam: float = DEFAULT_STEP_SIZE,
                  train_epochs: int = 10, crafting: Mapping[str, Any] | None = None, eval_size: int = 9850,
                  seed: int = 0, **sections: Any) -> dict[str, Any]:
    """The paper's MNIST campaign (S0 = the first 150 test images, ρ = 6, FGSM ε = 0.3, evaluation on the other
    9,850) against `target`, with the knobs given (preset: papernot-mnist unless given or the substitute section
    names `presets`; several: an ensemble of substitutes). `sections` are any other top-level keys of the spec
    (name, query_budget, camouflage…); a dict for target, substitute or evaluation is merged into the defaults."""
    ensemble = isinstance(sections.get("substitute"), Mapping) and "presets" in sections["substitute"]
    architecture = {} if preset is None and ensemble else substitute_presets(preset or "papernot-mnist")
    spec: dict[str, Any] = {
        "target": dict(target),
        "dataset": dataset,
        "initial_set": {"kind": "dataset", "split": "test", "offset": s0_offset, "size": s0},
        "substitute": {**architecture, "rho": rho, "lam": lam, "training": {"epochs": train_epochs}},
        "crafting": dict(crafting) if crafting is not None else fgsm(),
        "evaluation": {"split": "test", "size": eval_size},
        "seed": seed,
    }
    for key, value in sections.items():
        if key in MERGED_SECTIONS and isinstance(value, Mapping):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec
