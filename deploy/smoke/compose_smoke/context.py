"""One smoke run's settings and state, shared by its steps: options, folders, the environment of the docker
commands, the tokens and ports the stack gets, and what was started (so that cleanup knows what to stop)."""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from compose_smoke.commands import REPO, free_port
from compose_smoke.table import Table

PROJECT_IMAGE = "blackbox-range:smoke"


def local_datasets() -> Path | None:
    """A folder with mnist/ to bind as the datasets volume: BBRANGE_DATA_DIR, or ../shared/datasets."""
    for c in (os.environ.get("BBRANGE_DATA_DIR"), str(REPO.parent / "shared" / "datasets")):
        if c and (Path(c) / "mnist").is_dir():
            return Path(c).resolve()
    return None


@dataclass
class Context:
    args: argparse.Namespace
    table: Table = field(default_factory=Table)
    daemon: subprocess.Popen[bytes] | None = None
    compose_up: bool = False

    def __post_init__(self) -> None:
        self.cache = Path(self.args.cache).expanduser()
        self.tmp = Path(tempfile.mkdtemp(prefix="bbrange-smoke-", dir=self.args.tmp))
        self.env = dict(os.environ)
        self.env.pop("DOCKER_CONTEXT", None)
        self.project = f"bbrange-smoke-{os.getpid()}"
        self.admin_token = secrets.token_urlsafe(32)
        self.attack_admin_token = secrets.token_urlsafe(32)
        self.attack_secret_key = base64.urlsafe_b64encode(os.urandom(32)).decode()  # a Fernet key
        self.ports = {"oracle": free_port(), "attacker": free_port(), "prometheus": free_port(), "grafana": free_port()}
        self.data_dir = local_datasets()
        # Stand-ins: the override swaps the public images for ours and leaves Grafana out (no Debian package).
        self.compose_files = ["docker-compose.yml"] + (["deploy/smoke/compose.standins.yml"]
                                                       if self.args.images == "standins" else [])
        if self.data_dir is not None:
            self.compose_files.append("deploy/smoke/compose.datasets.yml")

    @property
    def standins(self) -> bool:
        return bool(self.args.images == "standins")

    def url(self, service: str) -> str:
        """A published port of the stack, on the host's loopback."""
        return f"http://127.0.0.1:{self.ports[service]}"
