"""Blacklight's lookup, in-process: which stored queries share at least T hashes with each new query.

Every oracle process holds one `FingerprintIndex` per model, a copy of the model's fingerprint log in Redis
(`blacklight_store.py` keeps the two in step); a lookup is then numpy work on the process's own memory, not ~100
Redis commands per query (what the first, Redis-only store cost: ~0.3 ms of Redis per query, as much as the
forward of a batch).

Layout: every stored query gets a sequence number (`qid`, in the log's order) with its time, owner ("client epoch")
and exact-input id in flat arrays; its S hashes go into sorted runs of (hash, qid) pairs, kept as a log-structured
merge: new queries form a small run, and a run is merged into the one before it once it is at least half its size,
so a query's pairs are re-sorted O(log n) times in all and a lookup binary-searches ~log n runs. A hash that many
queries share (MNIST's blank background windows, after the salt, hash alike at the same position) contributes only
its `keep` most recent queries: the work per lookup stays bounded, and a hash that tells little counts little.

Queries older than the retention cut-off or beyond the cap are forgotten by the log; here they are filtered out of
every answer at once and dropped when runs are merged (and the arrays renumbered once they are mostly dead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GROW = 1024


@dataclass(frozen=True)
class Matches:
    """For each looked-up query: the most hashes it shares with one earlier query (0: none), and the qid of the
    query it matched (-1: none; another client's when it matched several owners)."""

    shared: np.ndarray  # (Q,) int
    matched_qid: np.ndarray  # (Q,) int64


class FingerprintIndex:
    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted hashes uint64, qids int64), oldest first
        self._time_ms = np.empty(_GROW, np.int64)
        self._owner = np.empty(_GROW, np.int64)  # index into self.owners
        self._input = np.empty(_GROW, np.uint64)
        self._count = 0  # qids 0.._count-1 exist; below _first_live they are forgotten
        self._first_live = 0
        self._base = 0  # qid of array slot 0 (the arrays are renumbered when mostly dead)
        self.owners: list[str] = []  # "client epoch"
        self._owner_index: dict[str, int] = {}
        self._owner_client = np.empty(0, np.int64)  # owner index -> client index
        self._client_index: dict[str, int] = {}
        self._by_input: dict[int, int] = {}  # exact-input id -> its latest qid

    def __len__(self) -> int:
        return self._count - self._first_live

    @property
    def nbytes(self) -> int:
        """Its arrays' bytes (the runs and the per-query arrays, spare room included)."""
        return (sum(h.nbytes + q.nbytes for h, q in self._runs) + self._time_ms.nbytes + self._owner.nbytes
                + self._input.nbytes)

    # ------------------------------------------------------------------ what the log holds

    def add(self, times_ms: np.ndarray, owners: list[str], inputs: np.ndarray, fps: np.ndarray) -> None:
        """Append queries in the log's order: their times, owners, exact-input ids and (n, S) fingerprints (0:
        padding)."""
        n = len(owners)
        if not n:
            return
        first = self._count
        self._reserve(n)
        at = first - self._base
        self._time_ms[at : at + n] = times_ms
        self._owner[at : at + n] = [self._intern(o) for o in owners]
        self._input[at : at + n] = inputs
        for k, i in enumerate(inputs.tolist()):
            self._by_input[i] = first + k
        self._count += n
        qids = np.repeat(np.arange(first, first + n, dtype=np.int64), fps.shape[1])
        hashes = fps.reshape(-1)
        kept = hashes != 0
        self._push_run(hashes[kept], qids[kept])

    def forget_before(self, cutoff_ms: int, cap: int) -> None:
        """Queries stored before cutoff_ms, and all but the `cap` latest, are forgotten."""
        times = self._time_ms[self._first_live - self._base : self._count - self._base]
        live_from = self._first_live + int(np.searchsorted(times, cutoff_ms, side="left"))
        self._first_live = max(live_from, self._count - cap, self._first_live)
        if self._first_live - self._base > max(self._count - self._first_live, _GROW):
            self._renumber()

    def resent(self, inputs: np.ndarray) -> np.ndarray:
        """Which of these exact inputs a live stored query already had."""
        return np.array([self._by_input.get(i, -1) >= self._first_live for i in inputs.tolist()], bool)

    def owner_of(self, qids: np.ndarray) -> list[str]:
        return [self.owners[o] for o in self._owner[qids - self._base].tolist()]

    # ------------------------------------------------------------------ lookup

    def lookup(self, fps: np.ndarray, inputs: np.ndarray, threshold: int, client: str, me: str) -> Matches:
        """Match each query (row of fps, exact-input ids `inputs`) of `client` (`me`: "client epoch") against the
        live stored queries. Not a match: a stored query with the same exact input (a re-send says nothing new),
        and the client's own queries from before a clear (another epoch). Another client's query is preferred."""
        q, s = fps.shape
        keys = fps.reshape(-1)
        rows = np.repeat(np.arange(q, dtype=np.int64), s)
        valid = keys != 0
        keys, rows = keys[valid], rows[valid]
        pair_keys, pair_qids = [], []
        room = np.full(len(keys), self.keep, np.int64)  # the `keep` latest per hash over all runs, newest run first
        for hashes, qids in reversed(self._runs):
            k, found = _gather(hashes, qids, keys, room)
            room -= np.bincount(k, minlength=len(keys))
            live = found >= self._first_live
            pair_keys.append(k[live])
            pair_qids.append(found[live])
        shared = np.zeros(q, np.int64)
        matched = np.full(q, -1, np.int64)
        if not sum(len(k) for k in pair_keys):
            return Matches(shared, matched)
        k, found = np.concatenate(pair_keys), np.concatenate(pair_qids)
        r = rows[k]
        slot = found - self._base
        owner = self._owner[slot]
        mine = self._owner_client[owner] == self._client_index.get(client, -1)
        ok = (self._input[slot] != inputs[r]) & (~mine | (owner == self._owner_index.get(me, -1)))
        r, found, other = r[ok], found[ok], ~mine[ok]
        if not len(r):
            return Matches(shared, matched)
        span = self._count + 1
        pairs, first, n = np.unique(r * span + found, return_index=True, return_counts=True)
        pr, pq, po = pairs // span, pairs % span, other[first]
        np.maximum.at(shared, pr, n)
        hit = n >= threshold
        if hit.any():
            hr, hq, ho = pr[hit], pq[hit], po[hit]
            order = np.lexsort((hq, ho, hr))  # per row: another client's if any, then the latest
            last = np.r_[hr[order][1:] != hr[order][:-1], True]
            matched[hr[order][last]] = hq[order][last]
        return Matches(shared, matched)

    def within_batch(self, fps: np.ndarray, inputs: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each row of a batch, the most hashes it shares with one earlier row that is stored (`stored`: not a
        re-send) and not the same exact input, and that row (-1: none). As if the rows came one by one: each hash
        is compared with the `keep` latest earlier rows that had it, so the work grows linearly with the batch."""
        q, s = fps.shape
        keys = fps.reshape(-1)
        rows = np.repeat(np.arange(q, dtype=np.int64), s)
        valid = keys != 0
        order = np.argsort(keys[valid], kind="stable")  # stable: rows ascending among equal hashes
        sk, sr = keys[valid][order], rows[valid][order]
        p = np.arange(len(sk))
        n = np.minimum(p - np.searchsorted(sk, sk, side="left"), self.keep)
        total = int(n.sum())
        shared = np.zeros(q, np.int64)
        best = np.full(q, -1, np.int64)
        if not total:
            return shared, best
        at = np.repeat(p - n - (np.cumsum(n) - n), n) + np.arange(total)
        r, other = np.repeat(sr, n), sr[at]
        ok = stored[other] & (inputs[other] != inputs[r])
        if ok.any():
            pairs, counts = np.unique(r[ok] * q + other[ok], return_counts=True)
            pr, po = pairs // q, pairs % q
            order = np.lexsort((po, counts, pr))  # per row: the most shared, then the latest
            last = np.r_[pr[order][1:] != pr[order][:-1], True]
            shared[pr[order][last]] = counts[order][last]
            best[pr[order][last]] = po[order][last]
        return shared, best

    # ------------------------------------------------------------------ storage

    def _intern(self, owner: str) -> int:
        i = self._owner_index.get(owner)
        if i is None:
            i = self._owner_index[owner] = len(self.owners)
            self.owners.append(owner)
            client = owner.rsplit(" ", 1)[0]
            c = self._client_index.setdefault(client, len(self._client_index))
            self._owner_client = np.append(self._owner_client, c)
        return i

    def _reserve(self, n: int) -> None:
        need = self._count - self._base + n
        if need <= len(self._time_ms):
            return
        size = max(need, 2 * len(self._time_ms))
        for name in ("_time_ms", "_owner", "_input"):
            old = getattr(self, name)
            new = np.empty(size, old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _push_run(self, hashes: np.ndarray, qids: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")
        self._runs.append((hashes[order], qids[order]))
        while len(self._runs) > 1 and 2 * len(self._runs[-1][0]) >= len(self._runs[-2][0]):
            (h1, q1), (h2, q2) = self._runs[-2], self._runs[-1]
            h, qs = np.concatenate([h1, h2]), np.concatenate([q1, q2])
            live = qs >= self._first_live
            h, qs = h[live], qs[live]
            order = np.argsort(h, kind="stable")  # stable: older pairs stay first among equal hashes
            self._runs[-2:] = [(h[order], qs[order])]

    def _renumber(self) -> None:
        """Drop the forgotten queries from the arrays and the runs."""
        cut = self._first_live - self._base
        for name in ("_time_ms", "_owner", "_input"):
            old = getattr(self, name)
            setattr(self, name, old[cut:].copy())
        self._base = self._first_live
        runs = []
        for h, qs in self._runs:
            live = qs >= self._first_live
            runs.append((h[live], qs[live]))
        self._runs = [run for run in runs if len(run[0])]
        self._by_input = {i: q for i, q in self._by_input.items() if q >= self._first_live}


def _gather(hashes: np.ndarray, qids: np.ndarray, keys: np.ndarray,
            keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (position in keys, qid) pair whose key is in the sorted run, at most keep[i] (the latest) for keys[i]."""
    hi = np.searchsorted(hashes, keys, side="right")
    lo = np.maximum(np.searchsorted(hashes, keys, side="left"), hi - keep)
    n = hi - lo
    total = int(n.sum())
    if not total:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    starts = np.repeat(lo - (np.cumsum(n) - n), n)
    at = starts + np.arange(total)
    return np.repeat(np.arange(len(keys)), n), qids[at]
