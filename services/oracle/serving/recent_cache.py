"""A small in-process cache of recent Redis reads whose staleness is safe, bounded in entries and age.

The predict path reads the same few things on every request (which client an API key belongs to, whether the
extraction detector flagged that client); remembering them for about a second saves a Redis round trip per
request without letting any decision that must be exact (budgets, rate limits, revocation) go stale: those are
still decided by the charge in Redis, every time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class RecentCache(Generic[K, V]):
    """Values kept for at most `ttl_s` seconds; past `max_entries` the oldest entry is forgotten. ttl_s 0
    disables it (every get misses)."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if time.monotonic() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0:
            return
        self._entries[key] = (time.monotonic() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
