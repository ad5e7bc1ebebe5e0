"""Campaign state in Redis: one JSON record per campaign, indexes by creation time and by state, a lease
per running campaign, and the full spec (API key included) kept apart from the public record.

Every state change is a WATCH/MULTI transaction, so the API (cancelling) and a worker (progressing)
never overwrite each other's changes, and the state indexes always agree with the records.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from typing import cast

import redis
from redis.exceptions import WatchError

from bbrange.attacker.campaigns.storage.connections import connect
from bbrange.attacker.campaigns.storage.records import CampaignError, CampaignRecord, CampaignState, utcnow

ACTIVE = (CampaignState.queued, CampaignState.running)


class TooManyActive(Exception):
    """The owner already has this many queued and running campaigns."""

    def __init__(self, active: int) -> None:
        super().__init__(f"{active} active campaigns")
        self.active = active


# What the API hands out (uuid4 hex): anything else is no campaign, and never becomes part of a Redis key.
CAMPAIGN_ID = re.compile(r"^[0-9a-f]{32}$")


class CampaignStore:
    def __init__(self, client: redis.Redis, prefix: str = "bbrange:attack") -> None:
        self.redis = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "bbrange:attack", retry_s: float = 60.0) -> CampaignStore:
        """A store whose every call rides out a Redis outage of retry_s seconds (the workers' side)."""
        return cls(connect(url, retry_s=retry_s), prefix)

    # ------------------------------------------------------------------ keys

    def _record(self, cid: str) -> str:
        return f"{self.prefix}:campaign:{cid}"

    def _secret(self, cid: str) -> str:
        return f"{self.prefix}:campaign:{cid}:spec"

    def _cancel(self, cid: str) -> str:
        return f"{self.prefix}:campaign:{cid}:cancel"

    def _lease(self, cid: str) -> str:
        return f"{self.prefix}:campaign:{cid}:lease"

    def _all(self) -> str:
        return f"{self.prefix}:campaigns"

    def _by_state(self, state: CampaignState) -> str:
        return f"{self.prefix}:state:{state.value}"

    def _owned(self, owner: str, state: CampaignState | None = None) -> str:
        return f"{self.prefix}:owner:{owner}" + ("" if state is None else f":state:{state.value}")

    def _state_indexes(self, record: CampaignRecord, state: CampaignState) -> list[str]:
        return [self._by_state(state)] + ([self._owned(record.owner, state)] if record.owner else [])

    # ------------------------------------------------------------------ reads

    def get(self, cid: str) -> CampaignRecord | None:
        if not CAMPAIGN_ID.match(cid):
            return None
        raw = self.redis.get(self._record(cid))
        return None if raw is None else CampaignRecord.model_validate_json(raw)

    def page(self, state: CampaignState | None, offset: int, limit: int, owner: str | None = None
             ) -> tuple[list[CampaignRecord], int]:
        """Newest first; only `owner`'s campaigns when given."""
        index = self._all() if state is None else self._by_state(state)
        if owner is not None:
            index = self._owned(owner, state)
        ids = cast(list[bytes], self.redis.zrevrange(index, offset, offset + limit - 1))
        total = int(self.redis.zcard(index))
        raws = self.redis.mget([self._record(i.decode()) for i in ids]) if ids else []
        return [CampaignRecord.model_validate_json(r) for r in raws if r is not None], total

    def count_by_state(self) -> dict[CampaignState, int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for s in CampaignState:
                pipe.zcard(self._by_state(s))
            counts = pipe.execute()
        return dict(zip(CampaignState, (int(c) for c in counts), strict=True))

    def secret_spec(self, cid: str) -> str | None:
        raw = cast(bytes | None, self.redis.get(self._secret(cid)))
        return None if raw is None else raw.decode()

    def cancel_requested(self, cid: str) -> bool:
        return bool(self.redis.exists(self._cancel(cid)))

    # ------------------------------------------------------------------ writes

    def active_count(self, owner: str) -> int:
        """The owner's queued and running campaigns."""
        return sum(int(self.redis.zcard(self._owned(owner, s))) for s in ACTIVE)

    def create(self, record: CampaignRecord, secret_spec_json: str, max_active: int | None = None) -> None:
        """Store a new campaign; with max_active, TooManyActive unless its owner has fewer queued and running
        campaigns (checked in the same transaction, so concurrent submissions cannot both squeeze in)."""
        score = record.created_at.timestamp()
        active = [self._owned(record.owner, s) for s in ACTIVE] if record.owner and max_active else []
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    if active:
                        pipe.watch(*active)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                        count = sum(int(pipe.zcard(key)) for key in active)
                        if max_active is not None and count >= max_active:
                            raise TooManyActive(count)
                    pipe.multi()
                    pipe.set(self._secret(record.id), secret_spec_json)
                    pipe.set(self._record(record.id), record.model_dump_json())
                    pipe.zadd(self._all(), {record.id: score})
                    if record.owner:
                        pipe.zadd(self._owned(record.owner), {record.id: score})
                    for index in self._state_indexes(record, record.state):
                        pipe.zadd(index, {record.id: score})
                    pipe.execute()
                    return
                except WatchError:
                    continue

    def delete_oldest_finished(self, owner: str, keep: int) -> tuple[list[str], int]:
        """Delete the owner's oldest finished campaigns until at most `keep` remain (active ones stay).
        Returns the ids deleted (the caller removes their files) and how many campaigns the owner still has."""
        ids = [i.decode() for i in cast(list[bytes], self.redis.zrange(self._owned(owner), 0, -1))]
        deleted: list[str] = []
        for cid in ids:
            if len(ids) - len(deleted) <= keep:
                break
            if self._delete_finished(cid):
                deleted.append(cid)
        return deleted, len(ids) - len(deleted)

    def _delete_finished(self, cid: str) -> bool:
        key = self._record(cid)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                raw = pipe.get(key)
                record = None if raw is None else CampaignRecord.model_validate_json(raw)
                if record is None or not record.state.finished:
                    return False
                pipe.multi()
                pipe.delete(key, self._secret(cid), self._cancel(cid), self._lease(cid))
                pipe.zrem(self._all(), cid)
                if record.owner:
                    pipe.zrem(self._owned(record.owner), cid)
                for index in self._state_indexes(record, record.state):
                    pipe.zrem(index, cid)
                pipe.execute()
                return True
            except WatchError:  # it changed meanwhile: left for the next submission
                return False

    def update(
        self, cid: str, mutate: Callable[[CampaignRecord], None], *, only_from: set[CampaignState] | None = None,
        lease: tuple[str, float] | None = None, finish: bool = False,
    ) -> CampaignRecord | None:
        """Apply `mutate` to the stored record atomically. Returns the new record, or None when the campaign
        does not exist or is not in one of `only_from` (then nothing changes).

        `lease` = (holder, ttl) sets the campaign's lease in the same transaction; `finish` drops the lease,
        the cancel flag and the stored secret spec, which a finished campaign no longer needs.
        """
        key = self._record(cid)
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]  # redis-py leaves Pipeline.watch unannotated
                    raw = pipe.get(key)
                    if raw is None:
                        return None
                    record = CampaignRecord.model_validate_json(raw)
                    before = record.state
                    if only_from is not None and before not in only_from:
                        return None
                    mutate(record)
                    pipe.multi()
                    pipe.set(key, record.model_dump_json())
                    if record.state is not before:
                        score = record.created_at.timestamp()
                        for index in self._state_indexes(record, before):
                            pipe.zrem(index, cid)
                        for index in self._state_indexes(record, record.state):
                            pipe.zadd(index, {cid: score})
                    if lease is not None:
                        pipe.set(self._lease(cid), lease[0], px=int(lease[1] * 1000))
                    if finish:
                        pipe.delete(self._lease(cid), self._cancel(cid), self._secret(cid))
                    pipe.execute()
                    return record
                except WatchError:
                    continue

    def claim(self, cid: str, worker: str, lease_ttl_s: float) -> CampaignRecord | None:
        """queued → running for this worker, with a fresh lease; None if the campaign is not queued."""

        def start(r: CampaignRecord) -> None:
            r.state = CampaignState.running
            r.started_at = utcnow()
            r.worker = worker

        return self.update(cid, start, only_from={CampaignState.queued}, lease=(worker, lease_ttl_s))

    def renew_lease(self, cid: str, worker: str, lease_ttl_s: float) -> None:
        self.redis.set(self._lease(cid), worker, px=int(lease_ttl_s * 1000))

    def request_cancel(self, cid: str) -> CampaignRecord | None:
        """A queued campaign is cancelled at once; a running one is flagged and its worker stops it."""

        def cancel_queued(r: CampaignRecord) -> None:
            r.state = CampaignState.cancelled
            r.cancel_requested = True
            r.finished_at = utcnow()
            r.error = CampaignError(code="cancelled", message="cancelled before a worker started it")

        record = self.update(cid, cancel_queued, only_from={CampaignState.queued}, finish=True)
        if record is not None:
            return record
        self.redis.set(self._cancel(cid), "1")

        def flag(r: CampaignRecord) -> None:
            r.cancel_requested = True

        record = self.update(cid, flag, only_from={CampaignState.running})
        if record is None:  # finished meanwhile, or unknown: no flag must linger
            self.redis.delete(self._cancel(cid))
            return self.get(cid)
        return record

    def fail(self, cid: str, code: str, message: Callable[[CampaignRecord], str],
             only_from: set[CampaignState]) -> CampaignRecord | None:
        """Fail the campaign with code and message (written from its record) if it is in only_from."""

        def failed(r: CampaignRecord) -> None:
            r.state = CampaignState.failed
            r.finished_at = utcnow()
            r.error = CampaignError(code=code, message=message(r))

        return self.update(cid, failed, only_from=only_from, finish=True)

    def reap_lost(self) -> list[str]:
        """Fail running campaigns whose worker stopped renewing its lease (killed, host gone)."""
        lost = []
        for raw in cast(list[bytes], self.redis.zrange(self._by_state(CampaignState.running), 0, -1)):
            cid = raw.decode()
            # Re-checked just before the transaction: a worker may have just finished it.
            if self.redis.exists(self._lease(cid)):
                continue
            if self.fail(cid, "worker_lost", lambda r: (
                    f"the worker running this campaign ({r.worker}) stopped renewing its lease during phase "
                    f"{r.phase.value}; it was killed or lost its connection. Queries spent are reported as last "
                    "recorded"), {CampaignState.running}) is not None:
                lost.append(cid)
        return lost

    def queued_before(self, age_s: float) -> list[str]:
        """Campaigns still queued that were created more than age_s seconds ago."""
        raws = self.redis.zrangebyscore(self._by_state(CampaignState.queued), "-inf", time.time() - age_s)
        return [r.decode() for r in cast(list[bytes], raws)]


class LeaseKeeper:
    """Renews a running campaign's lease from a background thread while the campaign computes."""

    def __init__(self, store: CampaignStore, cid: str, worker: str, ttl_s: float) -> None:
        self._store, self._cid, self._worker, self._ttl = store, cid, worker, ttl_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{cid}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            # A short Redis outage: the next renewal may succeed before the lease expires.
            with contextlib.suppress(redis.RedisError):
                self._store.renew_lease(self._cid, self._worker, self._ttl)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
