"""The services' command lines and the environment they read their settings from.

shared/ never imports the services; it starts them as processes, by the command lines docker compose and k8s
run too (`bbrange oracle serve`, `bbrange attack serve`, `bbrange attack worker`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography.fernet import Fernet

__all__ = ["attack_serve", "attack_worker", "attacker_env", "bbrange_launcher", "oracle_env", "oracle_serve"]


def bbrange_launcher() -> list[str]:
    """`python -m bbrange` with this interpreter: the same install as the caller's, whatever is on PATH."""
    return [sys.executable, "-m", "bbrange"]


def oracle_serve(port: int, model_dir: Path, redis_url: str, *, launcher: Sequence[str] | None = None,
                 host: str | None = None, device: str = "cpu", models: Iterable[str] = (),
                 log_level: str | None = "warning") -> list[str]:
    """`bbrange oracle serve` on this port; models: the ones to serve (all in model_dir when empty)."""
    command = [*(launcher or bbrange_launcher()), "oracle", "serve"]
    if host is not None:
        command += ["--host", host]
    command += ["--port", str(port), "--model-dir", str(model_dir), "--redis-url", redis_url]
    for model in models:
        command += ["--model", model]
    command += ["--device", device]
    if log_level is not None:
        command += ["--log-level", log_level]
    return command


def attack_serve(port: int, *, launcher: Sequence[str] | None = None, host: str | None = None,
                 redis_url: str | None = None, log_level: str | None = None) -> list[str]:
    """`bbrange attack serve` on this port (its Redis from BBRANGE_ATTACK_REDIS_URL unless redis_url)."""
    command = [*(launcher or bbrange_launcher()), "attack", "serve"]
    if host is not None:
        command += ["--host", host]
    command += ["--port", str(port)]
    if redis_url is not None:
        command += ["--redis-url", redis_url]
    if log_level is not None:
        command += ["--log-level", log_level]
    return command


def attack_worker(name: str, *, launcher: Sequence[str] | None = None, torch_threads: int | None = None,
                  log_level: str | None = None) -> list[str]:
    """`bbrange attack worker`, registered with RQ under this name."""
    command = [*(launcher or bbrange_launcher()), "attack", "worker", "--name", name]
    if torch_threads is not None:
        command += ["--torch-threads", str(torch_threads)]
    if log_level is not None:
        command += ["--log-level", log_level]
    return command


def oracle_env(admin_token: str, *, redis_prefix: str | None = None, model_dir: Path | None = None,
               redis_url: str | None = None) -> dict[str, str]:
    """The oracle's settings (BBRANGE_*) that a stack sets; the rest keep their defaults."""
    env = {"BBRANGE_ADMIN_TOKEN": admin_token}
    if redis_prefix is not None:
        env["BBRANGE_REDIS_PREFIX"] = redis_prefix
    if model_dir is not None:
        env["BBRANGE_MODEL_DIR"] = str(model_dir)
    if redis_url is not None:
        env["BBRANGE_REDIS_URL"] = redis_url
    return env


def attacker_env(redis_url: str, data_dir: Path, admin_token: str, *, metrics_dir: Path | None = None,
                 oracle_allowlist: Iterable[str] = (), secret_key: str | None = None,
                 device: str | None = None) -> dict[str, str]:
    """The attacker's settings (BBRANGE_ATTACK_*) shared by its API and its workers: they must agree on the
    Redis, the data directory and the key that seals campaign credentials (a fresh one unless secret_key)."""
    env = {"BBRANGE_ATTACK_REDIS_URL": redis_url, "BBRANGE_ATTACK_DATA_DIR": str(data_dir),
           "BBRANGE_ATTACK_ADMIN_TOKEN": admin_token,
           "BBRANGE_ATTACK_SECRET_KEY": secret_key or Fernet.generate_key().decode(),
           "BBRANGE_ATTACK_ORACLE_ALLOWLIST": json.dumps(list(oracle_allowlist))}
    if metrics_dir is not None:
        env["BBRANGE_ATTACK_METRICS_DIR"] = str(metrics_dir)
    if device is not None:
        env["BBRANGE_ATTACK_DEVICE"] = device
    return env
