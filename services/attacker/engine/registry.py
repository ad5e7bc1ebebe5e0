"""The engine's attacks by name: the built-in ones, and those a plug-in registers (a campaign plug-in's spec
model builds its engine attack itself; this table is for a library user who names an attack by its `name`).
"""

from __future__ import annotations

from bbrange.attacker.engine.attack import Attack
from bbrange.attacker.engine.fgsm import FGSM
from bbrange.attacker.engine.jsma_attack import JSMA
from bbrange.attacker.engine.query_attacks.hopskipjump import HopSkipJump
from bbrange.attacker.engine.query_attacks.hybrid import Hybrid
from bbrange.attacker.engine.query_attacks.rays import RayS
from bbrange.attacker.engine.query_attacks.sign_opt import SignOPT
from bbrange.attacker.engine.transfer_attacks.difgsm import DIFGSM
from bbrange.attacker.engine.transfer_attacks.mifgsm import MIFGSM
from bbrange.attacker.engine.transfer_attacks.pgd import IFGSM, PGD
from bbrange.attacker.engine.transfer_attacks.rfgsm import RFGSM
from bbrange.attacker.engine.vocabulary import DEFAULT_ATTACK

ENGINE_ATTACKS: dict[str, type[Attack]] = {
    a.name: a for a in (FGSM, PGD, IFGSM, MIFGSM, DIFGSM, RFGSM, JSMA, HopSkipJump, SignOPT, RayS, Hybrid)}


def register_engine_attack(attack: type[Attack]) -> type[Attack]:
    """Add an attack class under its `name` (usable as a class decorator)."""
    known = ENGINE_ATTACKS.get(attack.name)
    if known is not None and known is not attack:
        raise ValueError(f"an attack named {attack.name!r} is registered already: {known.__module__}.{known.__qualname__}")
    ENGINE_ATTACKS[attack.name] = attack
    return attack


def attack_class(name: str) -> type[Attack]:
    try:
        return ENGINE_ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(ENGINE_ATTACKS)}") from None


def default_attack() -> Attack:
    """The pipeline's attack when none is given: the paper's, with its default settings."""
    return attack_class(DEFAULT_ATTACK)()
