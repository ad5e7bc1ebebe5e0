"""Detection settings: one `DetectorConfig` per model (thresholds, state sizes, policy), from the environment.

    BBRANGE_DETECTION_ENABLED=false                      no detector at all (no Redis work, no header)
    BBRANGE_DETECTION_DEFAULT='{"policy": "flag"}'       every model (fields not given keep their defaults)
    BBRANGE_DETECTION_MODELS='{"mnist": {"policy": "block", "delta": 0.9}}'   per model, over the default

A client's own policy, set by an admin (`PUT /v1/admin/clients/{id}/detection/policy`), wins over its model's.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Policy(str, Enum):
    observe = "observe"  # metrics and the admin API only
    flag = "flag"  # also X-Extraction-Flagged on answers, the flagged gauge and the alert
    block = "block"  # also 403 suspected_extraction for every later request, charged nothing


class DetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Policy = Policy.observe
    delta: float = Field(0.9, gt=0, lt=1, description="δ: alarm when Shapiro-Wilk W of the distances falls below it")
    min_distances: int = Field(100, ge=3, le=5000, description="W is computed once D holds more distances than this")
    window: int = Field(300, ge=20, le=5000, description="D keeps the most recent distances (Shapiro-Wilk: <= 5000)")
    check_every: int = Field(50, ge=1, le=10_000, description="W is recomputed after this many queries")
    max_per_class: int = Field(64, ge=1, le=10_000, description="Points kept per class in G_c (oldest evicted)")
    pool: int = Field(2, ge=1, le=8, description="Average-pool height and width by this factor before comparing "
                                                 "and storing (1: whole inputs)")
    duplicate_distance: float = Field(0.05, ge=0, description="A query this close to a stored one is a repeat")

    def bytes_per_client(self, point_bytes: int, classes: int) -> int:
        """Redis bytes of one client's state for one model, at most (values only, not Redis's overhead)."""
        per_class = self.max_per_class * point_bytes + 40
        return classes * per_class + self.window * (4 + 2) + 160


class DetectionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BBRANGE_DETECTION_", extra="ignore")

    enabled: bool = Field(True, description="Run the detector on every answered batch")
    default: DetectorConfig = Field(default_factory=DetectorConfig)
    models: dict[str, dict[str, object]] = Field(default_factory=dict, description="Per-model fields over the default")
    announce: bool = Field(True, description="Send X-Extraction-Flagged to flagged clients (policy flag or block)")
    queue_batches: int = Field(1024, gt=0, description="Answered batches waiting for the detector, at most")

    def for_model(self, model: str) -> DetectorConfig:
        override = self.models.get(model)
        if not override:
            return self.default
        return DetectorConfig.model_validate({**self.default.model_dump(), **override})
