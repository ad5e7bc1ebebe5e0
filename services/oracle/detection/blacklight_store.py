"""Blacklight's state in Redis, shared by every client and process of a model: a log of the stored fingerprints, and
each client's counters. Matching runs in-process on each process's copy of the log (`blacklight_index.py`).

    {prefix}:bl:{model}:{layout}:log        stream, one entry per stored query in the order stored: field c = the
                                            client and its epoch ("client epoch"), field f = the query's 8-byte
                                            exact-input id, then its S 8-byte hashes (padding left out)
    {prefix}:bl:{model}:{layout}:gen        a token naming this log: a log that Redis lost (restart, flush, expiry)
                                            gets a new one, and every process rebuilds its copy
    {prefix}:detect:{client}:{model}:blacklight      hash: queries, matched, matched_other, max_shared,
                                                     first_match_at (the client's counters for this model)
    ... :blacklight:linked                           set: the other clients whose queries matched this client's,
                                                     or that matched its queries (at most 64)
    ... :blacklight:recent                           list: positions of its last flag_matches matches (the flag rule)
    {prefix}:bl:{model}:{layout}:grp:{bucket}:parent hash: "client epoch" -> its parent in the groups' union-find
    ...:grp:{bucket}:{root}                          hash: queries (the group's, counted from when each member
                                                     joined), flagged; ...:recent (the positions of its last
                                                     flag_matches matches between two of its clients), ...:members

Groups (`flag_groups`): a match between two clients' queries links them, and linked clients form a group (a
union-find in Redis, union by size); the flag rule also runs on each group's queries, counting only the matches
between two of its clients, and when it fires every member is flagged, and any client that joins later as it
joins. An attack dealt over 100 keys is then flagged as soon as from one key (each key has sent a query or two);
a benign client's near-duplicates of its own pictures (brightened copies) count only for itself. Groups start
afresh with each time bucket (their keys expire with it).

`layout` names the fingerprint settings, so a changed configuration never mixes fingerprints that cannot match.
Time is cut into buckets of retention_s / buckets: a query is looked up against the queries stored since the oldest
live bucket began, and the log is trimmed to them (XTRIM MINID: an entry's id is the time it was stored) and holds
at most `max_queries` (beyond the cap a query is matched but not stored, counted); the keys expire when the current
bucket is retention_s old, so an idle model's state goes. An exact re-send (an Idempotency-Key retry answered
again, a picture asked twice, one picture many clients ask) is neither a match of that input nor stored again.

One observe call: a pipelined read (the log's token, the client's epoch, the entries since this process last read)
that brings the copy up to date, the lookup in numpy, then one Lua call that appends the stored queries and updates
the client's counters, links and flag rule. The first store kept the hashes themselves in Redis and looked every
one up in Lua: ~0.3 ms of Redis per query, as much as the model's forward (half the oracle's throughput at batch
100). What this costs instead: two processes answering at the same moment do not see each other's call's queries
(each sees them from its next call on). Size: ~0.5 KB of Redis per stored query (MEMORY USAGE, benchmarks/
detection_blacklight.py; tests/oracle/test_detection_blacklight.py holds it under 2 KB), and ~0.8 KB of each oracle
process's memory (S pairs of hash and sequence number, 16 bytes each).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, field

import numpy as np
from redis.asyncio import Redis

from bbrange.oracle.detection.blacklight_index import FingerprintIndex
from bbrange.oracle.detection.blacklight_script import SCRIPT
from bbrange.oracle.detection.config import BlacklightConfig

_PAGE = 2000  # log entries per read when a process rebuilds its copy
LogEntries = list[tuple[bytes, dict[bytes, bytes]]]  # XRANGE's reply: (entry id, fields)


@dataclass(frozen=True)
class Observed:
    """What one call learnt about a client's queries, in order."""

    shared: list[int]  # the most hashes each query shared with one earlier query (0: none)
    matched_client: list[str]  # per query, the client whose query it matched ('' none)
    stored: list[int]  # 1 stored, 0 an exact re-send (not stored again, not a match of itself), -1 over the cap
    queries_before: int  # the client's queries of the model Blacklight had seen before these
    alarm_at: int | None  # the client's query (position) at which the flag rule (its own or its group's) fired
    group_flagged: list[tuple[str, int]] = field(default_factory=list)  # the other clients of a group whose rule
    # fired in this call, each with its queries of the model so far


@dataclass(frozen=True)
class ClientBlacklight:
    queries: int
    matched: int
    matched_other: int
    max_shared: int
    first_match_at: int | None
    linked: list[str]


def _match(index: FingerprintIndex, cutoff_ms: int, config: BlacklightConfig, ids: np.ndarray, fps: np.ndarray,
           client_id: str, me: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per query: the most hashes shared with one earlier query, the "client epoch" whose query it matched ('' none),
    and whether it is an exact re-send (of a live stored query or of an earlier one in the batch)."""
    index.forget_before(cutoff_ms, config.max_queries)
    resent = index.resent(ids)
    repeat = np.ones(len(ids), bool)
    repeat[np.unique(ids, return_index=True)[1]] = False
    resent |= repeat
    found = index.lookup(fps, ids, config.threshold, client_id, me)
    in_batch, _ = index.within_batch(fps, ids, ~resent)
    owners = iter(index.owner_of(found.matched_qid[found.matched_qid >= 0]))
    nodes = [next(owners) if qid >= 0 else me if n >= config.threshold else ""
             for qid, n in zip(found.matched_qid.tolist(), in_batch.tolist(), strict=True)]
    return np.maximum(found.shared, in_batch), nodes, resent


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def layout(config: BlacklightConfig) -> str:
    """8 hex digits naming what a stored fingerprint depends on."""
    parts = (config.quantization, config.window, config.stride, config.hashes, config.salt_seed)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:8]


@dataclass
class _Copy:
    """This process's copy of one model's log, and how far it has read."""

    index: FingerprintIndex
    token: bytes | None = None
    last_id: bytes = b"0-0"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one call at a time reads, matches and appends


class BlacklightStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(SCRIPT)
        self._copies: dict[str, _Copy] = {}

    def base(self, model: str, config: BlacklightConfig) -> str:
        return f"{self.prefix}:bl:{model}:{layout(config)}:"

    def client_key(self, client_id: str, model: str) -> str:
        return f"{self.prefix}:detect:{client_id}:{model}:blacklight"

    async def observe(self, client_id: str, model: str, ids: np.ndarray, fps: np.ndarray, config: BlacklightConfig,
                      now: float | None = None) -> Observed:
        """Look up, store and count one client's queries, in order: `ids` their exact-input ids
        (`blacklight.input_ids`), `fps` their fingerprints."""
        now = time.time() if now is None else now
        bucket = int(now // config.bucket_s)
        expire_at = (bucket + config.buckets) * config.bucket_s
        cutoff_ms = (bucket - config.buckets + 1) * config.bucket_s * 1000
        base = self.base(model, config)
        copy = self._copies.get(base)
        if copy is None:
            copy = self._copies[base] = _Copy(FingerprintIndex(config.keep_per_hash))
        ids = np.asarray(ids, np.uint64)
        async with copy.lock:
            epoch = await self._catch_up(copy, base, client_id, expire_at)
            me = f"{client_id} {epoch}"
            # numpy off the event loop (it answers requests meanwhile), as is every change of the copy
            shared, nodes, resent = await asyncio.to_thread(_match, copy.index, cutoff_ms, config, ids, fps,
                                                            client_id, me)
            args: list[str | int | bytes] = [
                base + "log", base + "gen", int(now * 1000), cutoff_ms, config.max_queries, expire_at, client_id,
                self.client_key(client_id, model), me, config.flag_matches, config.flag_window,
                f"{self.prefix}:detect:", model, int(shared.max(initial=0)),
                f"{base}grp:{bucket}:" if config.flag_groups else ""]
            for i, again in enumerate(resent.tolist()):
                args.append(("0" if again else "1") + nodes[i])
                args.append(b"" if again else ids[i : i + 1].astype("<u8").tobytes()
                            + fps[i][fps[i] != 0].astype("<u8").tobytes())
            status, before, alarm, members = await self._script(keys=[], args=args)
        group = [(_text(members[i]), int(members[i + 1])) for i in range(0, len(members), 2)]
        return Observed([int(v) for v in shared.tolist()], [n.rsplit(" ", 1)[0] if n else "" for n in nodes],
                        [int(v) for v in status], int(before), int(alarm) if int(alarm) >= 0 else None, group)

    async def _catch_up(self, copy: _Copy, base: str, client_id: str, expire_at: int) -> int:
        """Bring this process's copy of the log up to date; returns the client's Blacklight epoch."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(base + "gen", secrets.token_hex(8), nx=True, exat=expire_at)
            pipe.get(base + "gen")
            pipe.hget(f"{self.prefix}:detect:{client_id}", "blacklight_epoch")
            pipe.xrange(base + "log", min=b"(" + copy.last_id, max="+")
            _, token, epoch, entries = await pipe.execute()
        if token == copy.token:
            await asyncio.to_thread(self._add, copy, entries)
            return int(epoch or 0)
        # A new log (the first call, or Redis lost the old one): this process's copy is rebuilt from it.
        copy.index, copy.token, copy.last_id = FingerprintIndex(copy.index.keep), token, b"0-0"
        while True:
            page: LogEntries = await self.redis.xrange(base + "log", min=b"(" + copy.last_id, max="+",
                                                       count=_PAGE)  # type: ignore[assignment]
            await asyncio.to_thread(self._add, copy, page)
            if len(page) < _PAGE:
                return int(epoch or 0)

    @staticmethod
    def _add(copy: _Copy, entries: LogEntries) -> None:
        if not entries:
            return
        records = [fields[b"f"] for _, fields in entries]
        fps = np.zeros((len(records), max(max(len(r) for r in records) // 8 - 1, 1)), np.uint64)
        for i, r in enumerate(records):
            row = np.frombuffer(r, "<u8")
            fps[i, : len(row) - 1] = row[1:]
        inputs = np.array([np.frombuffer(r[:8], "<u8")[0] for r in records], np.uint64)
        times = np.array([int(entry_id.split(b"-", 1)[0]) for entry_id, _ in entries], np.int64)
        copy.index.add(times, [fields[b"c"].decode() for _, fields in entries], inputs, fps)
        copy.last_id = entries[-1][0]

    def index_bytes(self) -> dict[str, int]:
        """Bytes of this process's copy of each model's log (benchmarks)."""
        return {base: copy.index.nbytes for base, copy in self._copies.items()}

    async def client(self, client_id: str, model: str) -> ClientBlacklight:
        key = self.client_key(client_id, model)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(key, ["queries", "matched", "matched_other", "max_shared", "first_match_at"])
            pipe.smembers(key + ":linked")
            (queries, matched, other, top, first), linked = await pipe.execute()
        return ClientBlacklight(int(queries or 0), int(matched or 0), int(other or 0), int(top or 0),
                                int(first) if first is not None else None,
                                sorted(_text(v) for v in linked))
