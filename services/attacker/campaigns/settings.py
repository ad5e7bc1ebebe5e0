"""Attacker service configuration, from BBRANGE_ATTACK_* environment variables.

The attacker has its own prefix (not the oracle's BBRANGE_REDIS_URL) because a range often runs both
services in one shell with different Redis databases.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The oracle's default port on loopback only: the service makes requests to URLs its users give it, so nothing
# else is reachable until an operator says so (no SSRF into the deployment's network, a cloud metadata service,
# or another port of this host). Entries are exact origins with explicit ports.
DEFAULT_ORACLE_ALLOWLIST = ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]


class AttackerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BBRANGE_ATTACK_", extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/1", description="Campaign state and the job queue")
    redis_prefix: str = Field("bbrange:attack", description="Key prefix of campaign state in Redis")
    queue_name: str = Field("bbrange-attacks", description="RQ queue the API enqueues campaigns on")
    data_dir: Path = Field(Path("attack-data"),
                           description="Durable sample storage shared by the API and the workers (one directory per campaign)")
    oracle_allowlist: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ORACLE_ALLOWLIST),
        description="Oracle origins campaigns may target, exactly: scheme://host:port, the port written out "
                    "(JSON list in the environment, e.g. '[\"http://oracle.internal:8000\"]')",
    )
    metrics_dir: Path | None = Field(
        None, description="prometheus-client multiprocess directory shared by the API and the workers of one host",
    )
    lease_ttl_s: float = Field(15.0, gt=0, description="A running campaign whose worker has not renewed its lease "
                                                     "for this long is failed as worker_lost")
    job_timeout_s: int = Field(6 * 3600, gt=0, description="Hard limit on one campaign's run time")
    oracle_timeout_s: float = Field(30.0, gt=0, description="Per-request timeout towards the oracle")
    oracle_user_agent: str | None = Field(
        None, max_length=256, pattern=r"^[\x20-\x7e]+$",
        description="User-Agent of the requests to oracles; unset: the HTTP library's own (python-httpx/VERSION), "
                    "which names no tool")
    oracle_max_attempts: int = Field(6, ge=1, description="Attempts per oracle request on transient errors")
    oracle_max_wait_s: float = Field(600.0, gt=0, description="Longest total wait (backoff and Retry-After) "
                                                              "for one oracle request")
    max_upload_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Largest decoded upload: an initial set's .npy, or x and y of an "
        "evaluation .npz together, judged from the zip directory and the .npy headers before anything is inflated")
    datasets_dir: Path | None = Field(
        None, description="Data volume of .npz files (x, and y for evaluation sets) that campaigns may name as "
                          "their own images; unset: none")
    device: str = Field("cpu", description="Torch device of the workers: auto, cpu or cuda")
    oracle_batch_size: int = Field(1000, ge=1, description="Inputs per predict request (at most the oracle's max batch, "
                                                           "1024 by default)")
    torch_threads: int | None = Field(None, ge=1, description="Torch threads per campaign (default: torch's own)")
    admin_token: SecretStr | None = Field(None, description="Bearer token of the attacker's admin (creates users, "
                                                            "sees every campaign); unset disables admin routes")
    secret_key: SecretStr | None = Field(None, description="Fernet key that encrypts the oracle API keys of campaigns "
                                                           "at rest in Redis; the API and the workers need the same one")
    max_request_bytes: int = Field(24 * 1024 * 1024, gt=0, description="Largest request body of the API (a spec "
                                                                       "with a base64 upload)")
    max_substitute_points: int = Field(100_000, ge=1, description="Most points a substitute may be trained on: "
                                                                 "|S0|·2^ρ, or less with reservoir sampling")
    max_evaluation_size: int = Field(20_000, ge=1, description="Most evaluation images of one campaign")
    max_attack_queries: int = Field(20_000_000, ge=1, description="Most queries a query attack may plan for one "
                                                                  "campaign: max_queries_per_image × evaluation size")
    redis_retry_s: float = Field(60.0, ge=0, description="How long a worker rides out a Redis outage (retries with "
                                                         "backoff) before a campaign call fails")
    max_spec_bytes: int = Field(64 * 1024, ge=1024, description="Largest campaign spec as stored (its JSON, each "
                                                                "upload counted by its shape only)")
    max_active_campaigns_per_user: int = Field(8, ge=1, description="Queued and running campaigns one user may "
                                                                    "have at once (429 beyond)")
    max_campaigns_per_user: int = Field(200, ge=1, description="Campaigns kept per user: a submission beyond deletes "
                                                               "the user's oldest finished ones, record and samples")
