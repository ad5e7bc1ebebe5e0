"""The stack under test: the real docker-compose.yml (with the smoke's overrides) brought up, watched until the
trainer has finished and every health check passes, its logs shown on failure, and taken down at the end."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from typing import Any

from compose_smoke.commands import REPO, SmokeFailure, run, wait_until
from compose_smoke.context import PROJECT_IMAGE, Context
from compose_smoke.standins import STANDINS


def compose_env(ctx: Context) -> dict[str, str]:
    env = dict(ctx.env)
    env.update({
        "BBRANGE_ADMIN_TOKEN": ctx.admin_token,
        "BBRANGE_ATTACK_ADMIN_TOKEN": ctx.attack_admin_token,
        "BBRANGE_ATTACK_SECRET_KEY": ctx.attack_secret_key,
        "BBRANGE_IMAGE": PROJECT_IMAGE,
        # The GTSRB oracle takes half an hour on two cores; MNIST alone about a minute.
        "BBRANGE_TRAIN_DATASETS": os.environ.get("BBRANGE_TRAIN_DATASETS", "mnist"),
        # One epoch (~98% test accuracy): the smoke checks the wiring, not the oracle; on a shared 2-core
        # machine the six-epoch recipe took over 15 minutes.
        "BBRANGE_TRAIN_ARGS": os.environ.get("BBRANGE_TRAIN_ARGS", "--epochs 1"),
        "BBRANGE_ORACLE_PORT": str(ctx.ports["oracle"]),
        "BBRANGE_ATTACKER_PORT": str(ctx.ports["attacker"]),
        "BBRANGE_PROMETHEUS_PORT": str(ctx.ports["prometheus"]),
        "BBRANGE_GRAFANA_PORT": str(ctx.ports["grafana"]),
        "COMPOSE_PROJECT_NAME": ctx.project,
    })
    if ctx.data_dir is not None:
        env["BBRANGE_SMOKE_DATA_DIR"] = str(ctx.data_dir)
    for name, spec in STANDINS.items():
        env[f"BBRANGE_SMOKE_{name.upper()}_IMAGE"] = spec["tag"]
    return env


def _compose_command(ctx: Context, *args: str) -> list[str]:
    files = [a for f in ctx.compose_files for a in ("-f", f)]
    return ["docker", "compose", "--project-name", ctx.project, *files, *args]


def compose(ctx: Context, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return run(_compose_command(ctx, *args), env=compose_env(ctx), **kwargs)


def services(ctx: Context) -> list[dict[str, Any]]:
    """`docker compose ps --format json`: one array (older Compose) or one object per line (newer)."""
    out = compose(ctx, "ps", "--all", "--format", "json", capture=True, quiet=True).stdout.strip()
    if not out:
        return []
    if out.startswith("["):
        listed: list[dict[str, Any]] = json.loads(out)
        return listed
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def up(ctx: Context, note: dict[str, str]) -> None:
    compose(ctx, "config", "--quiet")
    ctx.compose_up = True
    # `up -d` itself waits for the trainer and the health conditions in depends_on; watch it from here.
    proc = subprocess.Popen(_compose_command(ctx, "up", "--detach", "--no-build", "--pull", "never"), cwd=REPO,
                            env=compose_env(ctx))
    expected = {"redis": 1, "trainer": 1, "oracle": 1, "attacker-api": 1, "attacker-worker": 2, "prometheus": 1}
    if not ctx.standins:
        expected["grafana"] = 1
    t0 = time.monotonic()
    seen: dict[str, float] = {}

    def ready() -> bool:
        states = services(ctx)
        for s in states:
            name, state, health = s["Service"], s["State"], s.get("Health", "")
            if name == "trainer":
                if state == "exited":
                    if s.get("ExitCode", 0) != 0:
                        raise SmokeFailure(f"the trainer exited {s.get('ExitCode')}")
                    seen.setdefault("trainer", time.monotonic() - t0)
                continue
            if state in ("exited", "dead") or (state == "restarting"):
                raise SmokeFailure(f"{s['Name']} is {state} ({s.get('Status', '')})")
            if health == "unhealthy":
                raise SmokeFailure(f"{s['Name']} is unhealthy")
        for name, count in expected.items():
            mine = [s for s in states if s["Service"] == name]
            ok = (len(mine) == count and all(s["State"] == "exited" for s in mine)) if name == "trainer" else (
                len(mine) == count and all(s["State"] == "running" and s.get("Health") == "healthy" for s in mine))
            if ok:
                seen.setdefault(name, time.monotonic() - t0)
        if proc.poll() not in (None, 0):
            raise SmokeFailure(f"docker compose up exited {proc.returncode}")
        return all(n in seen for n in expected)

    try:
        wait_until("every service healthy", ready, ctx.args.up_timeout, 5)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    order = sorted(seen.items(), key=lambda kv: kv[1])
    note["detail"] = "; ".join(f"{n} {t:.0f} s" for n, t in order)


def dump_logs(ctx: Context) -> None:
    if ctx.compose_up:
        with contextlib.suppress(Exception):
            compose(ctx, "ps", "--all", check=False)
            compose(ctx, "logs", "--no-color", "--tail", "60", check=False)


def down(ctx: Context) -> list[str]:
    """compose down -v; what of the project is still there (containers, networks, volumes)."""
    left: list[str] = []
    if not ctx.compose_up:
        return left
    compose(ctx, "down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)
    label = f"label=com.docker.compose.project={ctx.project}"
    for kind in ("container", "network", "volume"):
        cmd = ["docker", "ps", "--all", "--quiet", "--filter", label] if kind == "container" else \
            ["docker", kind, "ls", "--quiet", "--filter", label]
        out = run(cmd, env=ctx.env, capture=True, check=False, quiet=True).stdout.split()
        left += [f"{kind} {x}" for x in out]
    return left
