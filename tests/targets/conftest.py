"""Foreign endpoints for the target adapters: KServe's own model server (from the test-only environment
.venv-kserve) and the FastAPI apps of foreign_apps.py, each a real process on a loopback port, serving
small MLPs trained here; and an attacker stack (API + one worker) with default batch sizes and a data
volume for campaign files."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bbrange.attacker.campaigns.spec.builder import campaign_spec
from bbrange.shared.processes import Process, free_port
from bbrange.shared.stack import Stack
from tests.attacker.conftest import AttackerStack, start_stack
from tests.conftest import REPO, RedisServer
from tests.targets.foreign_apps import PREFIXES
from tests.targets.tiny_models import blobs, train_mlp

KSERVE_PYTHON = Path(os.environ.get("BBRANGE_TEST_KSERVE_PYTHON", REPO / ".venv-kserve" / "bin" / "python"))
BLOBS_SHAPE = (3, 48, 48)
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64)"  # the stack's BBRANGE_ATTACK_ORACLE_USER_AGENT


@dataclass
class Weights:
    mnist: Path
    blobs: Path


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Weights:
    """An MNIST MLP (5,000 training images, ~86% accurate) and a 3x48x48 five-class MLP on toy blobs."""
    from bbrange.shared.datasets import load_dataset

    folder = tmp_path_factory.mktemp("foreign-models")
    train = load_dataset("mnist", "train", data_dir, download=False)
    x, y = blobs(1000, seed=1)
    return Weights(train_mlp(train.x[:5000], train.y[:5000], 10, folder / "mnist.pt"),
                   train_mlp(x, y, 5, folder / "blobs.pt", epochs=3))


@dataclass
class KServeServer:
    url: str
    counts_file: Path
    process: Process

    def requests(self, model: str, protocol: str) -> list[tuple[float, int]]:
        """(time, inputs) of each request the server answered for this model and protocol."""
        lines = [json.loads(line) for line in self.counts_file.read_text().splitlines()] if self.counts_file.exists() else []
        return [(c["at"], c["inputs"]) for c in lines if c["model"] == model and c["protocol"] == protocol]

    def seen(self, model: str, protocol: str) -> tuple[int, int]:
        """(requests, inputs) the server answered for this model and protocol."""
        mine = self.requests(model, protocol)
        return len(mine), sum(n for _, n in mine)


@pytest.fixture(scope="session")
def kserve_server(weights: Weights, kserve_port: int, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[KServeServer]:
    if not KSERVE_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{KSERVE_PYTHON} is missing: `make test` creates the test-only KServe environment")
        pytest.skip(f"no KServe environment at {KSERVE_PYTHON}: `make kserve-env` (or `make test`) creates it")
    folder = tmp_path_factory.mktemp("kserve")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with Stack(folder, env=env, stop_grace_s=10) as processes:
        service = processes.start_service(
            "kserve", lambda port: [
                str(KSERVE_PYTHON), str(REPO / "tests" / "targets" / "kserve_server.py"), "--port", str(port),
                "--counts", str(folder / "counts.jsonl"), "--model", f"mnist:{weights.mnist}:1,28,28:10",
                "--model", f"blobs:{weights.blobs}:3,48,48:5"],
            port=kserve_port, ready_path="/v2/health/ready", ready_timeout_s=120)
        yield KServeServer(service.url, folder / "counts.jsonl", service.process)


@dataclass
class ForeignApps:
    url: str  # GET /_counts
    ports: dict[str, int]  # endpoint prefix -> its port
    process: Process | None = None

    def at(self, prefix: str) -> str:
        """The origin of the endpoint that lives under `prefix` in foreign_apps.py."""
        return f"http://127.0.0.1:{self.ports[prefix]}"

    def origins(self) -> list[str]:
        return [self.at(p) for p in PREFIXES]

    def counts(self) -> Counter[str]:
        return Counter(httpx.get(self.url + "/_counts", timeout=10).raise_for_status().json())


@pytest.fixture(scope="session")
def foreign_ports() -> ForeignApps:
    """The endpoints' origins, chosen before anything starts, so the attacker can allowlist them."""
    ports = {"": free_port(), **{p: free_port() for p in PREFIXES}}
    return ForeignApps(f"http://127.0.0.1:{ports['']}", ports)


@pytest.fixture(scope="session")
def kserve_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def foreign(weights: Weights, foreign_ports: ForeignApps, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[ForeignApps]:
    env = {"FOREIGN_MNIST_WEIGHTS": str(weights.mnist), "FOREIGN_BLOBS_WEIGHTS": str(weights.blobs),
           "FOREIGN_PORTS": json.dumps(foreign_ports.ports)}
    # One process serves every endpoint, each on its own port; it is ready when the counts endpoint answers.
    with Stack(tmp_path_factory.mktemp("foreign"), cwd=REPO, stop_grace_s=10) as processes:
        service = processes.start_service("foreign", lambda _: [sys.executable, "-m", "tests.targets.foreign_apps"],
                                          port=foreign_ports.ports[""], env=env, ready_path="/_counts")
        yield ForeignApps(foreign_ports.url, foreign_ports.ports, service.process)


@pytest.fixture(scope="session")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's data volume (BBRANGE_ATTACK_DATASETS_DIR): S0 as uint8, the evaluation set as float."""
    folder = tmp_path_factory.mktemp("volume")
    x0, _ = blobs(20, seed=7)
    np.savez(folder / "blobs_s0.npz", x=np.rint(x0 * 255).astype(np.uint8))
    x, y = blobs(30, seed=8)
    np.savez(folder / "blobs_eval.npz", x=x, y=y)
    return folder


@pytest.fixture(scope="session")
def stack(redis_server: RedisServer, volume: Path, foreign_ports: ForeignApps, kserve_port: int,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackerStack]:
    """The attacker API and one worker on DB 3, with the default batch size (1,000 inputs per request) and a
    browser's User-Agent; the foreign endpoints and the KServe server are on its allowlist, origin by origin."""
    allowlist = [*foreign_ports.origins(), f"http://127.0.0.1:{kserve_port}"]
    s = start_stack(redis_server, 3, tmp_path_factory.mktemp("targets-stack"), workers=1,
                    extra_env={"BBRANGE_ATTACK_DATASETS_DIR": str(volume),
                               "BBRANGE_ATTACK_ORACLE_ALLOWLIST": json.dumps(allowlist),
                               "BBRANGE_ATTACK_ORACLE_USER_AGENT": USER_AGENT})
    yield s
    s.stop()


def tiny_spec(target: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """MNIST, S0 = 20, ρ = 1, one training epoch, 30 evaluation images, FGSM ε = 0.3."""
    return campaign_spec(target, s0=20, rho=1, lam=0.1, train_epochs=1, eval_size=30, **overrides)
