"""Shared fixtures: a private redis-server, quick models, and real oracle processes on loopback ports."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bbrange.shared.datasets import Dataset
from bbrange.shared.oracle_admin import OracleAdmin
from bbrange.shared.processes import Process, free_port
from bbrange.shared.stack import RedisServer, Stack, commands

REPO = Path(__file__).resolve().parents[1]
BBRANGE = Path(sys.executable).parent / "bbrange"


@dataclass
class OracleProcess:
    url: str
    process: Process
    admin_token: str

    @property
    def log(self) -> Path | None:
        return self.process.log

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10)

    def admin_client(self) -> OracleAdmin:
        """The typed admin client (the raw one above is for tests of the admin API's answers themselves)."""
        return OracleAdmin(self.url, self.admin_token)

    def create_client(self, budget: int, name: str = "test", rate_per_minute: int | None = None) -> tuple[str, str]:
        with self.admin_client() as oracle:
            created = oracle.create_client(name, budget, rate_per_minute)
        return created.client.client_id, created.api_key

    def usage(self, client_id: str) -> dict[str, Any]:
        with self.admin_client() as oracle:
            return oracle.client(client_id).model_dump()

    def stop(self) -> None:
        self.process.stop(grace_s=15)


def start_oracle(model_dir: Path, redis_url: str, prefix: str, log_dir: Path, *, admin_token: str = "test-admin",
                 extra_env: dict[str, str] | None = None, wait: bool = True) -> OracleProcess:
    port = free_port()
    service = Stack(log_dir, launcher=[str(BBRANGE)]).start_oracle(
        model_dir, redis_url, port=port, log=log_dir / f"oracle-{port}.log",
        env={**commands.oracle_env(admin_token, redis_prefix=prefix), **(extra_env or {})},
        ready_path="/healthz" if wait else None)
    return OracleProcess(service.url, service.process, admin_token)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("BBRANGE_DATA_DIR") or REPO.parent / "shared" / "datasets")
    assert (path / "mnist").is_dir(), f"datasets not found in {path}; set BBRANGE_DATA_DIR"
    os.environ["BBRANGE_DATA_DIR"] = str(path)  # for the subprocesses the tests start
    return path


@pytest.fixture(scope="session")
def quick_model_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A quick MNIST oracle (1 epoch on 3,000 images), trained once per session."""
    from bbrange.oracle.models.training import train_oracle

    model_dir = tmp_path_factory.mktemp("models")
    train_oracle("mnist", model_dir, quick=True, data_dir=data_dir, show_progress=False)
    return model_dir


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oracle_pair(quick_model_dir: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[tuple[OracleProcess, OracleProcess]]:
    """Two oracle processes sharing one Redis, as a scaled-out deployment would run."""
    logs = tmp_path_factory.mktemp("logs")
    oracles = [start_oracle(quick_model_dir, redis_server.url, "bbtest", logs) for _ in range(2)]
    yield oracles[0], oracles[1]
    for o in oracles:
        o.stop()


@pytest.fixture
def oracle(oracle_pair: tuple[OracleProcess, OracleProcess]) -> OracleProcess:
    return oracle_pair[0]


@pytest.fixture(scope="session")
def mnist_test(data_dir: Path) -> Dataset:
    from bbrange.shared.datasets import load_dataset

    return load_dataset("mnist", "test", data_dir, download=False)


@dataclass
class ForeignModel:
    module: Any  # tests.foreign_model.ForeignNet
    onnx_file: Path


@pytest.fixture(scope="session")
def foreign_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ForeignModel:
    """A model the project did not train (tests/foreign_model.py), trained on 4,000 MNIST images, as ONNX."""
    from bbrange.shared.datasets import load_dataset
    from tests.foreign_model import export, train_foreign

    train = load_dataset("mnist", "train", data_dir, download=False)
    module = train_foreign(train.x[:4000], train.y[:4000])
    return ForeignModel(module, export(module, tmp_path_factory.mktemp("foreign") / "foreign.onnx"))


@pytest.fixture(scope="session")
def onnx_model_dir(quick_model_dir: Path, foreign_model: ForeignModel, tmp_path_factory: pytest.TempPathFactory
                   ) -> Path:
    """The quick MNIST model beside the foreign model, imported with `bbrange oracle import` as 'foreign'."""
    import subprocess

    from tests.foreign_model import IMPORT_ARGS

    model_dir = tmp_path_factory.mktemp("onnx-models")
    for f in quick_model_dir.iterdir():
        shutil.copy(f, model_dir / f.name)
    run = subprocess.run([str(BBRANGE), "oracle", "import", str(foreign_model.onnx_file), "--name", "foreign",
                          "--dataset", "mnist", *IMPORT_ARGS, "--model-dir", str(model_dir)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return model_dir


@pytest.fixture(scope="session")
def onnx_oracle(onnx_model_dir: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[OracleProcess]:
    """An oracle process serving the quick MNIST model (torch) and the imported foreign model (ONNX Runtime)."""
    oracle = start_oracle(onnx_model_dir, redis_server.url, "bbonnx", tmp_path_factory.mktemp("onnx-logs"),
                          extra_env={"BBRANGE_MAX_MODEL_BYTES": str(4 * 1024 * 1024)})
    yield oracle
    oracle.stop()


@pytest.fixture(scope="session")
def attacker(redis_server: RedisServer, data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
             oracle_pair: tuple[OracleProcess, OracleProcess]) -> Iterator[Any]:
    """The API and two workers (several campaigns at once), on DB 1 of the session's private Redis.

    Oracle requests carry at most 16 inputs, so that every phase of a small campaign is split into several
    requests and a budget can run out in the middle of one `label` call."""
    from tests.attacker.conftest import start_stack  # the attacker's helpers import this module

    stack = start_stack(redis_server, 1, tmp_path_factory.mktemp("attacker"), workers=2,
                        extra_env={"BBRANGE_ATTACK_ORACLE_BATCH_SIZE": "16"}, oracles=oracle_pair)
    yield stack
    stack.stop()
