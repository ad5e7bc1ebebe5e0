"""One cell's load: what a cell measures, the counters its clients share, and how answers are decoded."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import httpx
import numpy as np

from bbrange.shared.wire import decode_npy


class ClientKind(StrEnum):
    asyncio = "asyncio"
    threads = "threads"


@dataclass
class Cell:
    batch: int
    concurrency: int
    seconds: float
    requests: int
    labels: int
    latencies_s: list[float] = field(repr=False)
    cpu: dict[str, float]
    server_request_ms: float  # mean time inside the predict handler (server's histogram)
    server_forward_ms: float  # mean model forward (server's histogram)
    forward_busy: float  # fraction of the wall time the server spent in model forwards

    @property
    def labels_per_s(self) -> float:
        return self.labels / self.seconds

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) * 1e3 if self.latencies_s else float("nan")


@dataclass
class Totals:
    labels: int = 0  # every label answered, warm-ups included: must equal what the ledger charged
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self.lock:
            self.labels += n


def npy_labels(response: httpx.Response) -> np.ndarray:
    return decode_npy(response.content)


def v2_labels(response: httpx.Response) -> np.ndarray:
    """The INT64 labels of an Open Inference Protocol response with the binary output after its JSON header."""
    split = int(response.headers["Inference-Header-Content-Length"])
    return np.frombuffer(response.content[split:], dtype="<i8").astype(np.int64)


def v2_body(x: np.ndarray, input_name: str) -> tuple[bytes, int]:
    """An infer request for this batch, tensor bytes after the JSON (tritonclient's default), and the JSON length."""
    head = json.dumps({"inputs": [{"name": input_name, "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "outputs": [{"name": "label", "parameters": {"binary_data": True}}]}).encode()
    return head + np.ascontiguousarray(x, dtype="<f4").tobytes(), len(head)


class Load:
    """Shared state of one cell's workers: counters only move while `measuring` is set."""

    def __init__(self, batch: int, totals: Totals,
                 decode: Callable[[httpx.Response], np.ndarray] = npy_labels) -> None:
        self.decode = decode
        self.batch = batch
        self.totals = totals
        self.measuring = False
        self.stop = False
        self.requests = 0
        self.labels = 0
        self.latencies: list[float] = []
        self.lock = threading.Lock()

    def record(self, response: httpx.Response, seconds: float) -> None:
        if response.status_code != 200:
            raise RuntimeError(f"predict answered {response.status_code}: {response.text[:300]}")
        labels = self.decode(response)
        if labels.shape != (self.batch,) or labels.dtype != np.int64:
            raise RuntimeError(f"expected {self.batch} int64 labels, got {labels.dtype} {labels.shape}")
        self.totals.add(self.batch)
        if self.measuring:
            with self.lock:
                self.requests += 1
                self.labels += self.batch
                self.latencies.append(seconds)
