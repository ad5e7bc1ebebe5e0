"""Shared fixtures: a private redis-server, quick models, and real oracle processes on loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
BBRANGE = Path(sys.executable).parent / "bbrange"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server must be on PATH for the tests"
        self.process = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_until(ready, 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class OracleProcess:
    url: str
    process: subprocess.Popen
    log: Path
    admin_token: str

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10)

    def create_client(self, budget: int, name: str = "test", rate_per_minute: int | None = None) -> tuple[str, str]:
        with self.admin() as c:
            r = c.post("/v1/admin/clients", json={"name": name, "budget": budget, "rate_per_minute": rate_per_minute})
            r.raise_for_status()
            body = r.json()
        return body["client"]["client_id"], body["api_key"]

    def usage(self, client_id: str) -> dict:
        with self.admin() as c:
            return c.get(f"/v1/admin/clients/{client_id}").raise_for_status().json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_oracle(model_dir: Path, redis_url: str, prefix: str, log_dir: Path, *, admin_token: str = "test-admin",
                 extra_env: dict[str, str] | None = None, wait: bool = True) -> OracleProcess:
    port = free_port()
    log = log_dir / f"oracle-{port}.log"
    env = {**os.environ, "BBRANGE_ADMIN_TOKEN": admin_token, "BBRANGE_REDIS_PREFIX": prefix,
           **(extra_env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BBRANGE), "oracle", "serve", "--port", str(port), "--model-dir", str(model_dir),
             "--redis-url", redis_url, "--device", "cpu", "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    oracle = OracleProcess(f"http://127.0.0.1:{port}", process, log, admin_token)
    if wait:
        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"oracle exited with {process.returncode}:\n{log.read_text()}")
            try:
                return httpx.get(oracle.url + "/healthz", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 60, f"oracle on port {port}")
    return oracle


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("BBRANGE_DATA_DIR") or REPO.parent / "shared" / "datasets")
    assert (path / "mnist").is_dir(), f"datasets not found in {path}; set BBRANGE_DATA_DIR"
    os.environ["BBRANGE_DATA_DIR"] = str(path)  # for the subprocesses the tests start
    return path


@pytest.fixture(scope="session")
def quick_model_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A quick MNIST oracle (1 epoch on 3,000 images), trained once per session."""
    from bbrange.oracle.training import train_oracle

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
def mnist_test(data_dir: Path):
    from bbrange.shared.datasets import load_dataset

    return load_dataset("mnist", "test", data_dir, download=False)
