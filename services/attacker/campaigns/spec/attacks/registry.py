"""One registry of attacks: a spec's `crafting.method` -> its pydantic spec model and its engine attack's factory.

The built-in attacks (fgsm.py, jsma.py beside this module) and the plug-ins named in BBRANGE_ATTACK_PLUGINS
(comma-separated importable modules) register themselves when imported; `load_attacks` imports them all
once, before the campaign spec's `crafting` union is built from the registry. A module registers with

    register_attack("name", NameCrafting, build)   # build(spec model) -> an engine `Attack`

and stays torch-free at import (the API imports it): `build` imports the engine side when the worker calls it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bbrange.attacker.engine.vocabulary import DEFAULT_ATTACK

if TYPE_CHECKING:
    from bbrange.attacker.engine.attack import Attack

PLUGINS_ENV = "BBRANGE_ATTACK_PLUGINS"
_BUILT_IN = ("bbrange.attacker.campaigns.spec.attacks.fgsm", "bbrange.attacker.campaigns.spec.attacks.jsma",
             "bbrange.attacker.campaigns.spec.attacks.hopskipjump", "bbrange.attacker.campaigns.spec.attacks.sign_opt",
             "bbrange.attacker.campaigns.spec.attacks.rays", "bbrange.attacker.campaigns.spec.attacks.hybrid",
             "bbrange.attacker.campaigns.spec.attacks.pgd", "bbrange.attacker.campaigns.spec.attacks.mifgsm",
             "bbrange.attacker.campaigns.spec.attacks.difgsm", "bbrange.attacker.campaigns.spec.attacks.rfgsm")


class CraftingSpec(BaseModel):
    """The base of every attack's spec model; a subclass declares `method: Literal["its name"]` and its settings."""

    model_config = ConfigDict(strict=True, extra="forbid")
    method: str

    @model_validator(mode="before")
    @classmethod
    def _settings_of_other_attacks(cls, data: Any) -> Any:
        """A setting this attack lacks but another has (a momentum on PGD) is refused with the attacks that take it."""
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    owners = [m for m, entry in _ATTACKS.items() if key in entry.spec.model_fields]
                    if owners:
                        raise ValueError(f"{data.get('method')} has no setting {key!r}; {', '.join(owners)} "
                                         f"{'has' if len(owners) == 1 else 'have'} it")
        return data

    def label(self) -> str:
        """The attack and its settings in a few characters, for reports (e.g. "FGSM ε=0.3")."""
        return self.method

    def sizes(self) -> list[float]:
        """The perturbation sizes crafted from the one substitute, the headline first; empty when the attack
        has no single size."""
        return []


S = TypeVar("S", bound=CraftingSpec)


@dataclass(frozen=True)
class RegisteredAttack(Generic[S]):
    method: str
    spec: type[S]
    build: Callable[[S], Attack]  # called in the worker only: may import torch

    def engine_attack(self, crafting: CraftingSpec) -> Attack:
        if not isinstance(crafting, self.spec):
            raise TypeError(f"{self.method} builds from a {self.spec.__name__}, got a {type(crafting).__name__}")
        return self.build(crafting)


_ATTACKS: dict[str, RegisteredAttack[Any]] = {}
_sealed = False


def register_attack(method: str, spec: type[S], build: Callable[[S], Attack]) -> None:
    """Add an attack; from a module that `load_attacks` imports (a built-in or a BBRANGE_ATTACK_PLUGINS plug-in)."""
    if _sealed and method not in _ATTACKS:
        raise RuntimeError(f"attack {method!r} registered after the campaign spec was built: name its module in "
                           f"{PLUGINS_ENV} so that it is imported first")
    if get_args(spec.model_fields["method"].annotation) != (method,):
        raise TypeError(f"{spec.__name__}.method must be declared Literal[{method!r}] to register it as {method!r}")
    known = _ATTACKS.get(method)
    if known is not None and known.spec is not spec:
        raise ValueError(f"an attack named {method!r} is registered already ({known.spec.__module__})")
    _ATTACKS[method] = RegisteredAttack(method, spec, build)


def plugin_modules(value: str | None = None) -> list[str]:
    """The plug-in modules named in BBRANGE_ATTACK_PLUGINS (or `value`)."""
    raw = os.environ.get(PLUGINS_ENV, "") if value is None else value
    return [name.strip() for name in raw.split(",") if name.strip()]


def load_attacks() -> dict[str, RegisteredAttack[Any]]:
    """Import the built-in attacks and the plug-ins (once; a plug-in that fails to import fails the start)."""
    for module in (*_BUILT_IN, *plugin_modules()):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"attack plug-in {module!r} (from {PLUGINS_ENV}) cannot be imported: {e}") from e
    return dict(_ATTACKS)


def registered(method: str) -> RegisteredAttack[Any]:
    load_attacks()
    try:
        return _ATTACKS[method]
    except KeyError:
        raise ValueError(f"unknown attack {method!r}; known: {', '.join(_ATTACKS)}") from None


def crafting_type() -> Any:
    """The spec's `crafting` field: the registered spec models, discriminated by `method`. Once built, the
    registry is sealed (a spec model registered later could not be validated)."""
    global _sealed
    models = tuple(entry.spec for entry in load_attacks().values())
    _sealed = True
    return Annotated[Union[models], Field(discriminator="method")]  # noqa: UP007 - a union built at run time


def stored_crafting(crafting: dict[str, Any]) -> CraftingSpec | None:
    """A stored spec's `crafting` as its spec model; None where its attack is not registered in this process,
    or its plug-in no longer accepts it."""
    try:
        spec: CraftingSpec = registered(str(crafting.get("method"))).spec.model_validate(crafting)
    except ValueError:  # pydantic's ValidationError is one
        return None
    return spec


def crafting_label(crafting: dict[str, Any]) -> str:
    """The label of a stored spec's `crafting` (its method alone where its attack is unknown here)."""
    spec = stored_crafting(crafting)
    return spec.label() if spec is not None else str(crafting.get("method", "?"))


def default_crafting() -> CraftingSpec:
    """The crafting of a spec that names none: the default attack with its default settings."""
    spec: CraftingSpec = registered(DEFAULT_ATTACK).spec.model_validate({"method": DEFAULT_ATTACK})
    return spec
