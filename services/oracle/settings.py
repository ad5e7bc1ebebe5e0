"""Oracle configuration, from BBRANGE_* environment variables (secrets never from files in the repo)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OracleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BBRANGE_", extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Where budgets and API keys live")
    redis_prefix: str = Field("bbrange:oracle", description="Key prefix, so several ranges can share one Redis")
    redis_timeout_s: float = Field(2.0, gt=0, description="Socket timeout; past it the oracle answers 503")
    redis_max_connections: int = Field(64, gt=0, description="Redis connections per oracle process")
    model_dir: Path = Field(Path("models"), description="Directory of <name>.safetensors + <name>.json cards")
    models: list[str] | None = Field(None, description="Model names to serve (default: every card in model_dir)")
    admin_token: SecretStr | None = Field(None, description="Bearer token of the admin API; unset disables it")
    max_batch: int = Field(1024, gt=0, description="Most inputs in one predict request")
    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0, description="Largest predict request body")
    max_json_body_bytes: int = Field(8 * 1024 * 1024, gt=0, description="Largest JSON predict body (parsing JSON "
                                                                        "costs far more than reading .npy)")
    auth_failures_per_minute: int = Field(20, gt=0, description="Unknown API keys one source address may send in a "
                                                                "minute; its further unknown keys get 429 with "
                                                                "Retry-After (known keys are always accepted)")
    forwarded_allow_ips: str = Field("", description="Comma-separated addresses or networks of the proxies whose "
                                     "X-Forwarded-For names the client's address; '*' trusts every peer. Empty: "
                                     "the peer's address is the client's")
    replay_ttl_s: int = Field(600, gt=0, description="How long the answer to an Idempotency-Key is kept for retries")
    recent_cache_ttl_s: float = Field(1.0, ge=0, le=60, description="How long a process remembers which client an "
                                      "API key is and a client's extraction flag and policy (0: not at all). "
                                      "Budgets, rate limits and revocation are decided in Redis on every request")
    device: str = Field("auto", description="auto, cpu or cuda")
    dynamic_batching: bool = Field(True, description="Gather concurrent requests for one model into one forward")
    batch_max_delay_ms: float = Field(2.0, ge=0, description="Longest a request waits for others to join its "
                                      "forward (only while others are on their way)")
    batch_max_inputs: int = Field(256, gt=0, description="Most inputs in one gathered forward; a larger request "
                                  "runs alone")
    max_model_bytes: int = Field(256 * 1024 * 1024, gt=0, description="Largest ONNX file the admin API imports")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        """Checked here because uvicorn takes anything it cannot parse for a literal that never matches."""
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if "*" in entries and len(entries) > 1:
            raise ValueError("'*' trusts every peer; give it alone")
        for entry in entries:
            if entry != "*":
                ipaddress.ip_network(entry)  # an address, or a network without host bits; ValueError otherwise
        return ",".join(entries)
