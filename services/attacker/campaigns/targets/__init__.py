"""Label-only endpoints a campaign can aim at, one adapter per serving protocol, each behind the engine's
`LabelOracle` contract (see client.py for what they share)."""

from __future__ import annotations

from collections.abc import Callable

from bbrange.attacker.campaigns.spec.target import Target
from bbrange.attacker.campaigns.targets.bbrange import BbrangeTarget
from bbrange.attacker.campaigns.targets.client import TargetClient
from bbrange.attacker.campaigns.targets.http_json import HttpJsonTarget
from bbrange.attacker.campaigns.targets.kserve_v1 import KServeV1Target
from bbrange.attacker.campaigns.targets.open_inference import OpenInferenceTarget
from bbrange.attacker.campaigns.targets.torchserve import TorchServeTarget

ADAPTERS: dict[str, type[TargetClient]] = {
    a.protocol: a for a in (BbrangeTarget, OpenInferenceTarget, KServeV1Target, TorchServeTarget, HttpJsonTarget)
}


def connect(target: Target, *, timeout_s: float = 30.0, max_attempts: int = 6, max_wait_s: float = 600.0,
            interrupt: Callable[[], None] | None = None, user_agent: str | None = None) -> TargetClient:
    """The adapter for the target's protocol (no request is made until it is described or asked)."""
    return ADAPTERS[target.protocol](target, timeout_s=timeout_s, max_attempts=max_attempts, max_wait_s=max_wait_s,
                                     interrupt=interrupt, user_agent=user_agent)


__all__ = ["ADAPTERS", "TargetClient", "connect"]
