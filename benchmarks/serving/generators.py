"""The load generators: `concurrency` clients posting bodies back to back, as asyncio tasks or as threads, for a
warm-up and then a measured duration; and single-input requests one at a time for latency."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx
import numpy as np

from .cpu import CpuSnapshot, cpu_shares, server_metrics
from .load import Cell, ClientKind, Load, Totals, npy_labels


def run_cell(kind: ClientKind, base_url: str, headers: dict[str, str], path: str, bodies: list[bytes], batch: int,
             concurrency: int, warmup_s: float, duration_s: float, server_pid: int, redis_pid: int,
             model: str, totals: Totals, decode: Callable[[httpx.Response], np.ndarray] = npy_labels) -> Cell:
    load = Load(batch, totals, decode)
    marks: dict[str, object] = {}
    with httpx.Client(base_url=base_url, timeout=30.0) as side:  # for /metrics, off the load's connections

        def begin() -> None:
            marks["m0"] = server_metrics(side, model)
            marks["c0"] = CpuSnapshot.take(server_pid, redis_pid)
            load.measuring = True

        def end() -> None:
            load.measuring = False
            marks["c1"] = CpuSnapshot.take(server_pid, redis_pid)
            marks["m1"] = server_metrics(side, model)

        if kind is ClientKind.asyncio:
            asyncio.run(_async_load(base_url, headers, path, bodies, concurrency, warmup_s, duration_s, load,
                                    begin, end))
        else:
            _threaded_load(base_url, headers, path, bodies, concurrency, warmup_s, duration_s, load, begin, end)

    c0, c1 = marks["c0"], marks["c1"]
    m0, m1 = marks["m0"], marks["m1"]
    seconds = c1.wall - c0.wall
    n_req = max(1.0, m1["request_count"] - m0["request_count"])
    n_fwd = max(1.0, m1["inference_count"] - m0["inference_count"])
    return Cell(
        batch=batch, concurrency=concurrency, seconds=seconds, requests=load.requests, labels=load.labels,
        latencies_s=load.latencies, cpu=cpu_shares(c0, c1),
        server_request_ms=1e3 * (m1["request_sum"] - m0["request_sum"]) / n_req,
        server_forward_ms=1e3 * (m1["inference_sum"] - m0["inference_sum"]) / n_fwd,
        forward_busy=(m1["inference_sum"] - m0["inference_sum"]) / seconds,
    )


async def _async_load(base_url: str, headers: dict[str, str], path: str, bodies: list[bytes], concurrency: int,
                      warmup_s: float, duration_s: float, load: Load, begin: Callable[[], None],
                      end: Callable[[], None]) -> None:
    """One event loop in one thread, `concurrency` tasks sharing a pool of as many keep-alive connections."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60.0) as client:

        async def worker(i: int) -> None:
            j = i
            while not load.stop:
                body = bodies[j % len(bodies)]
                j += 1
                started = time.perf_counter()
                response = await client.post(path, content=body)
                load.record(response, time.perf_counter() - started)

        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]

        async def hold(seconds: float) -> None:
            done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # a worker only finishes early by failing: raise its error

        try:
            await hold(warmup_s)
            begin()
            await hold(duration_s)
            end()
        finally:
            load.stop = True
            await asyncio.gather(*tasks, return_exceptions=True)


def _threaded_load(base_url: str, headers: dict[str, str], path: str, bodies: list[bytes], concurrency: int,
                   warmup_s: float, duration_s: float, load: Load, begin: Callable[[], None],
                   end: Callable[[], None]) -> None:
    """`concurrency` threads, each with its own httpx.Client and keep-alive connection."""
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as client:
                j = i
                while not load.stop:
                    body = bodies[j % len(bodies)]
                    j += 1
                    started = time.perf_counter()
                    response = client.post(path, content=body)
                    load.record(response, time.perf_counter() - started)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
            load.stop = True

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()

    def hold(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not errors:
            time.sleep(0.05)
        if errors:
            raise errors[0]

    try:
        hold(warmup_s)
        begin()
        hold(duration_s)
        end()
    finally:
        load.stop = True
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


def sequential_latency(base_url: str, headers: dict[str, str], path: str, bodies: list[bytes], warmup_s: float,
                       duration_s: float, totals: Totals) -> np.ndarray:
    """Latency of single-input requests, one at a time over one keep-alive connection (sync httpx)."""
    load = Load(1, totals)
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        for phase, seconds in (("warmup", warmup_s), ("measure", duration_s)):
            load.measuring = phase == "measure"
            deadline = time.perf_counter() + seconds
            j = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = client.post(path, content=bodies[j % len(bodies)])
                load.record(response, time.perf_counter() - started)
                j += 1
    return np.asarray(load.latencies) * 1e3
