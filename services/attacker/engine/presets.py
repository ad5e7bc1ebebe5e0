"""Substitute presets: which of the shared architectures the attacker offers as substitutes, and why.

The layer lists live with the architectures (bbrange.shared.architectures) so that a model card and a
preset can never describe the same network differently.
"""

from __future__ import annotations

from dataclasses import dataclass

from bbrange.attacker.engine.vocabulary import SUBSTITUTE_PRESET_NAMES
from bbrange.shared.architectures import ARCHITECTURES


@dataclass(frozen=True)
class SubstitutePreset:
    name: str
    architecture: str  # a key of ARCHITECTURES
    dataset: str  # the input domain it was designed for
    source: str

    @property
    def layers(self) -> str:
        return ARCHITECTURES[self.architecture].layers


SUBSTITUTE_PRESETS: dict[str, SubstitutePreset] = {
    p.name: p
    for p in (
        SubstitutePreset("papernot-mnist", "papernot-mnist", "mnist",
                         "black-box paper, Section 5.1: the substitute used against MetaMind (architecture A)"),
        SubstitutePreset("lenet", "lenet", "mnist", "JSMA thesis, Section 5.1: the Theano-tutorial LeNet"),
        SubstitutePreset("mlp", "mlp", "mnist", "a small fully-connected baseline (the paper's Section 6 varies layers)"),
        SubstitutePreset("gtsrb-substitute", "gtsrb-substitute", "gtsrb",
                         "a GTSRB CNN substitute (the paper's GTSRB substitutes are CNNs of this size)"),
    )
}


if tuple(SUBSTITUTE_PRESETS) != SUBSTITUTE_PRESET_NAMES:  # the spec validates names from the torch-free list
    raise RuntimeError(f"vocabulary.SUBSTITUTE_PRESET_NAMES {SUBSTITUTE_PRESET_NAMES} differ from the presets "
                       f"{tuple(SUBSTITUTE_PRESETS)}")


def get_preset(name: str) -> SubstitutePreset:
    try:
        return SUBSTITUTE_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown substitute preset {name!r}; known: {', '.join(SUBSTITUTE_PRESETS)}") from None
