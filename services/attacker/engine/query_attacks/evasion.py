"""The adaptive attacker's evasion of similarity detectors (Blacklight and its kind), OARS-style (Feng et al.,
"Stateful defenses for machine learning models are not yet secure against black-box attacks", CCS 2023): every
query a decision-based attack sends goes through a fresh random transformation the classifier is nearly
invariant to, but that changes the detector's fingerprint.

Blacklight rounds each (salted) pixel to steps of 50/255 and hashes windows of 20 consecutive values; two queries
match when half their kept hashes agree. A window changes when any of its 20 pixels crosses a step, so a change of
a few /255 on every pixel changes nearly every window, where the attack's own near-copies change almost none:

    brightness   x·(1 + c) + b, c and b uniform in [-strength, strength], one draw per query (every pixel moves
                 together: one random number per query, so two queries can draw nearly the same one)
    noise        x + Gaussian noise of standard deviation `strength`, drawn per pixel and per query

both clipped to [0, 1]. The attack never sees the transformation: it asks about x, the oracle answers about
T(x). What `PerImageQueries` keeps is T(x), the input the oracle actually answered, with its own distortion:
every kept example is adversarial as it is, at the price of the transformation's distortion (measured by
benchmarks/detection_adaptive.py), and no query is spent re-checking it. Rejection sampling (OARS's other half:
re-send a query the defence rejected, with a new draw) needs per-query feedback that the oracle does not give: it
flags or blocks the whole account (a 403 `suspected_extraction` refuses every later request), so there is no
single rejected query to re-send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Transform = Literal["brightness", "noise"]
TRANSFORMS: tuple[Transform, ...] = ("brightness", "noise")


@dataclass(frozen=True)
class Evasion:
    transform: Transform
    strength: float

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown evasion transform {self.transform!r}; known: {', '.join(TRANSFORMS)}")
        if not 0.0 < self.strength <= 0.5:
            raise ValueError("the evasion's strength must be in (0, 0.5]")

    def probe_radius(self, dim: int, norm: str) -> float:
        """The size of the change the transformation makes to an input of `dim` values (L2: strength·√dim; L∞:
        about 3·strength), below which an attack's probes around a point are drowned by it: HopSkipJump probes its
        gradient at least this far (OARS adapts the attack's step sizes likewise)."""
        return float(self.strength * (np.sqrt(dim) if norm == "l2" else 3.0))

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each row of x (N, ...) in [0, 1] through its own random draw; same shape, float32."""
        x = np.asarray(x, np.float32)
        s = self.strength
        if self.transform == "brightness":
            shape = (len(x),) + (1,) * (x.ndim - 1)
            c, b = rng.uniform(-s, s, shape), rng.uniform(-s, s, shape)
            out = x * (1.0 + c) + b
        else:
            out = x + rng.normal(0.0, s, x.shape)
        moved: np.ndarray = np.clip(out, 0.0, 1.0).astype(np.float32)
        return moved
