"""Detection settings: one `DetectorConfig` per model (thresholds, state sizes, policy), from the environment.

    BBRANGE_DETECTION_ENABLED=false                      no detector at all (no Redis work, no header)
    BBRANGE_DETECTION_DEFAULT='{"policy": "flag"}'       every model (fields not given keep their defaults)
    BBRANGE_DETECTION_MODELS='{"mnist": {"policy": "block", "delta": 0.9}}'   per model, over the default
    BBRANGE_DETECTION_MODELS='{"gtsrb": {"blacklight": {"window": 50}}}'      Blacklight's settings, field by field

One policy per model covers both detectors (PRADA's and Blacklight's flags alike). A client's own policy, set by
an admin (`PUT /v1/admin/clients/{id}/detection/policy`), wins over its model's.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Policy(str, Enum):
    observe = "observe"  # metrics and the admin API only
    flag = "flag"  # also X-Extraction-Flagged on answers, the flagged gauge and the alert
    block = "block"  # also 403 suspected_extraction for every later request, charged nothing


class BlacklightConfig(BaseModel):
    """Blacklight (Li et al., USENIX Security 2022) for one model. The fingerprint settings are the paper's and its
    released code's for MNIST and CIFAR-10 (quantization 50, window 20, stride 1, top 50 hashes, threshold 25,
    salt seeded 666); for ImageNet-size inputs the paper uses window 50."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Fingerprint this model's queries and match them")
    quantization: int = Field(50, ge=1, le=255, description="Pixels (0..255) are rounded to multiples of this")
    window: int = Field(20, ge=1, le=4096, description="Pixels per hashed window of the flattened input")
    stride: int = Field(1, ge=1, le=4096, description="Step between windows")
    hashes: int = Field(50, ge=1, le=200, description="S: the largest S distinct window hashes are the fingerprint")
    threshold: int = Field(25, ge=1, le=200, description="T: a query sharing at least T hashes with an earlier query "
                                                         "matches it")
    salt_seed: int | None = Field(666, ge=0, description="Seed of the per-pixel salt added before quantization (the "
                                  "reference code's 666); set your own to keep it secret; null: no salt")
    flag_matches: int = Field(10, ge=1, le=1000, description="The client is flagged once this many of its queries "
                              "matched ...")
    flag_window: int = Field(100, ge=1, le=100_000, description="... within this many of its consecutive queries")
    flag_groups: bool = Field(True, description="Clients linked by matches form a group, and the same rule applies to "
                              "the group's queries counting only matches between two of its clients: an attack split "
                              "over many keys is flagged (every key of it) as fast as from one key; a client's matches "
                              "of its own earlier queries count only for itself")
    retention_s: int = Field(86_400, ge=60, description="Fingerprints are forgotten at most this long after they "
                             "were stored (Blacklight resets daily)")
    buckets: int = Field(1, ge=1, le=24, description="Time buckets of retention_s / buckets each: a fingerprint "
                         "lives (retention_s - retention_s / buckets, retention_s], until the bucket it was stored in "
                         "is the oldest of the live ones. 1: the whole state is forgotten at once, as Blacklight's "
                         "daily reset")
    max_queries: int = Field(100_000, ge=1, description="Most fingerprints stored per model at once; beyond it "
                             "queries are matched but not stored (counted)")
    keep_per_hash: int = Field(16, ge=1, le=64, description="Queries looked at per hash (the most recent): a hash "
                               "that nearly every query has tells little, and a lookup stays cheap")

    @property
    def bucket_s(self) -> int:
        return max(self.retention_s // self.buckets, 1)


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
    blacklight: BlacklightConfig = Field(default_factory=BlacklightConfig)

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
        merged = {**self.default.model_dump(), **override}
        blacklight = override.get("blacklight")
        if isinstance(blacklight, dict):  # field by field over the default's, as the top level is
            merged["blacklight"] = {**self.default.blacklight.model_dump(), **blacklight}
        return DetectorConfig.model_validate(merged)
