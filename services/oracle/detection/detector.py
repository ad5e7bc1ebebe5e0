"""The detector as the predict route sees it: two calls, both cheap.

    headers = await detector.admit(client_id, model)     before charging: 403 suspected_extraction when the
                                                          client is flagged under `block` (nothing is charged)
    detector.observe(client_id, model, x, labels)        after answering: queue the batch, return at once

A background task drains the queue: batches waiting for the same client and model (gathered for up to
COALESCE_S) are fed together to PRADA (the client's own state, one Redis transaction) and to Blacklight (the
fingerprints of every client's queries, one pipelined round trip), so under load the detector's Redis and CPU
work per answered input shrinks instead of slowing the answers. A full queue drops batches (counted) rather than
making clients wait. Either detector may flag the client; the model's (or the client's) policy decides what a
flag does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import numpy as np
from redis.asyncio import Redis

from bbrange.oracle.detection import blacklight, prada
from bbrange.oracle.detection.blacklight_store import BlacklightStore
from bbrange.oracle.detection.config import BlacklightConfig, DetectionSettings, Policy
from bbrange.oracle.detection.metrics import DETECTORS, DetectionMetrics
from bbrange.oracle.detection.store import ClientDetection, DetectionStore, Flag, now_iso
from bbrange.oracle.query_metrics import OracleMetrics
from bbrange.oracle.serving.recent_cache import RecentCache
from bbrange.shared.http_errors import ApiError

log = logging.getLogger(__name__)

FLAG_HEADER = "X-Extraction-Flagged"
MAX_COALESCED = 256  # batches taken off the queue at once
# After a batch arrives the detector waits this long for more before feeding PRADA: a client's requests one after
# another (a binary search) then cost one Redis transaction per wait, not one each. It delays a flag by as much.
COALESCE_S = 0.05


@dataclass(frozen=True)
class _Batch:
    client_id: str
    model: str
    x: np.ndarray
    labels: np.ndarray


class Detector:
    def __init__(self, redis: Redis, prefix: str, oracle_metrics: OracleMetrics,
                 settings: DetectionSettings | None = None, cache_ttl_s: float = 0.0) -> None:
        self.settings = settings or DetectionSettings()
        self.store = DetectionStore(redis, prefix)
        self.blacklight = BlacklightStore(redis, prefix)
        # A client's flag and policy as `admit` last read them. A flag raised, cleared or a policy set through
        # another process takes effect here within cache_ttl_s; through this one, at once (forgotten here).
        self._admissions: RecentCache[str, ClientDetection] = RecentCache(cache_ttl_s)
        self.metrics = DetectionMetrics.of(oracle_metrics)
        self._queue: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=self.settings.queue_batches)
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ the two calls of the predict route

    async def admit(self, client_id: str, model: str) -> dict[str, str]:
        """Refuse a blocked client (403 suspected_extraction); else the headers its answer carries."""
        if not self.settings.enabled:
            return {}
        client = self._admissions.get(client_id)
        if client is None:
            client = await self.store.client(client_id)
            self._admissions.put(client_id, client)
        policy = client.policy or self.settings.for_model(model).policy
        flag = client.flag
        if flag is None or policy is Policy.observe:
            return {}
        if policy is Policy.block:
            raise ApiError(403, "suspected_extraction",
                           f"this API key is blocked: its queries look like model extraction ({flag.reason} flagged "
                           f"it after {flag.queries} queries of {flag.model}); nothing was charged. An admin can "
                           "clear the flag.",
                           {"reason": flag.reason, "model": flag.model, "queries": flag.queries,
                            "statistic": flag.statistic, "flagged_at": flag.flagged_at},
                           {FLAG_HEADER: self.header(flag)})
        return {FLAG_HEADER: self.header(flag)} if self.settings.announce else {}

    def observe(self, client_id: str, model: str, x: np.ndarray, labels: np.ndarray) -> None:
        """Queue an answered batch for the detector; never waits."""
        if not self.settings.enabled:
            return
        try:
            self._queue.put_nowait(_Batch(client_id, model, x, labels))
            self._idle.clear()
        except asyncio.QueueFull:
            for name in DETECTORS:
                self.metrics.dropped.labels(model=model, detector=name).inc(len(x))

    @staticmethod
    def header(flag: Flag) -> str:
        return f"{flag.reason}; queries={flag.queries}"

    # ------------------------------------------------------------------ the background task

    def start(self) -> None:
        if self.settings.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="extraction-detector")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drained(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued batch has been fed to the detector (tests, benchmarks)."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def _run(self) -> None:
        while True:
            batches = [await self._queue.get()]
            if self._queue.qsize() < MAX_COALESCED:
                await asyncio.sleep(COALESCE_S)
            while len(batches) < MAX_COALESCED and not self._queue.empty():
                batches.append(self._queue.get_nowait())
            groups: dict[tuple[str, str], list[_Batch]] = {}
            for b in batches:
                groups.setdefault((b.client_id, b.model), []).append(b)
            for (client_id, model), items in groups.items():
                await self.update(client_id, model, np.concatenate([b.x for b in items]),
                                  np.concatenate([b.labels for b in items]))
            if self._queue.empty():
                self._idle.set()

    async def update(self, client_id: str, model: str, x: np.ndarray, labels: np.ndarray) -> None:
        """Feed one client's answered inputs of one model to each detector; one that fails (Redis down) loses
        them (counted), the other still sees them, and the oracle goes on answering."""
        for name, feed in (("prada", self._prada), ("blacklight", self._blacklight)):
            started = time.perf_counter()
            try:
                await feed(client_id, model, x, labels)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the detector must never take the oracle down
                log.exception("extraction detector: %s update of %s/%s failed", name, client_id, model)
                self.metrics.dropped.labels(model=model, detector=name).inc(len(x))
            self.metrics.update_seconds.labels(model=model, detector=name).observe(time.perf_counter() - started)

    async def _prada(self, client_id: str, model: str, x: np.ndarray, labels: np.ndarray) -> None:
        config = self.settings.for_model(model)
        z = prada.project(x, config)
        alarm_before: list[int | None] = []

        def apply(state: prada.PradaState) -> None:
            alarm_before.append(state.alarm_at)
            prada.update(state, z, labels, config)

        state = await self.store.update(client_id, model, z.shape[1], labels, apply)
        if state.statistic is not None:
            self.metrics.statistic.labels(client=client_id, model=model, detector="prada").set(state.statistic)
        if state.alarm_at is not None and alarm_before[-1] is None:
            await self._flag(client_id, Flag("prada", model, state.alarm_at, state.statistic, now_iso()))

    async def _blacklight(self, client_id: str, model: str, x: np.ndarray, labels: np.ndarray) -> None:
        config: BlacklightConfig = self.settings.for_model(model).blacklight
        if not config.enabled or not len(x) or x[0].size < config.window:  # smaller than a window: no hash
            return
        # ~50 µs of numpy per MNIST input: off the event loop, which answers requests meanwhile
        fps, ids = await asyncio.to_thread(lambda: (blacklight.fingerprints(x, config), blacklight.input_ids(x)))
        seen = await self.blacklight.observe(client_id, model, ids, fps, config)
        m = self.metrics
        for outcome, code in (("stored", 1), ("resent", 0), ("dropped", -1)):
            if n := seen.stored.count(code):
                m.blacklight_fingerprints.labels(model=model, outcome=outcome).inc(n)
        same = sum(1 for c in seen.matched_client if c == client_id)
        other = sum(1 for c in seen.matched_client if c and c != client_id)
        if same:
            m.blacklight_matches.labels(model=model, owner="same_client").inc(same)
        if other:
            m.blacklight_matches.labels(model=model, owner="other_client").inc(other)
        m.statistic.labels(client=client_id, model=model, detector="blacklight").set(max(seen.shared, default=0))
        statistic = float(max(seen.shared, default=0))
        if seen.alarm_at is not None:
            linked = (await self.blacklight.client(client_id, model)).linked
            await self._flag(client_id, Flag("blacklight", model, seen.alarm_at, statistic, now_iso(), tuple(linked)))
        for member, queries in seen.group_flagged:  # the rest of a linked group whose rule fired just now
            linked = (await self.blacklight.client(member, model)).linked
            await self._flag(member, Flag("blacklight", model, queries, statistic, now_iso(), tuple(linked)))

    async def set_policy(self, client_id: str, policy: Policy | None) -> None:
        await self.store.set_policy(client_id, policy)
        self._admissions.forget(client_id)

    async def _flag(self, client_id: str, flag: Flag) -> None:
        raised = await self.store.raise_flag(client_id, flag)
        self._admissions.forget(client_id)
        if not raised:
            return
        client = await self.store.client(client_id)
        policy = client.policy or self.settings.for_model(flag.model).policy
        log.warning("extraction detector: client %s flagged by %s after %d queries of %s (statistic %s, linked %s, "
                    "policy %s)", client_id, flag.reason, flag.queries, flag.model, flag.statistic,
                    ",".join(flag.linked) or "-", policy.value)
        self.metrics.flags.labels(reason=flag.reason, model=flag.model, policy=policy.value).inc()
        self.metrics.queries_until_flag.labels(reason=flag.reason, model=flag.model).observe(flag.queries)
        if policy is not Policy.observe:
            self.metrics.flagged.labels(client=client_id, reason=flag.reason).set(1)

    async def clear(self, client_id: str) -> None:
        flag = (await self.store.client(client_id)).flag
        await self.store.clear(client_id)
        self._admissions.forget(client_id)
        if flag is not None:
            self.metrics.flagged.labels(client=client_id, reason=flag.reason).set(0)
