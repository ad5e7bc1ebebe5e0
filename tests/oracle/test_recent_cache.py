"""The in-process cache of the predict path: bounded in age and in entries."""

from __future__ import annotations

import time

from bbrange.oracle.serving.recent_cache import RecentCache


def test_entries_expire_after_their_ttl():
    cache: RecentCache[str, str] = RecentCache(ttl_s=0.2)
    cache.put("k", "c_1")
    assert cache.get("k") == "c_1"
    time.sleep(0.25)
    assert cache.get("k") is None


def test_the_oldest_entry_goes_past_the_bound_and_forget_drops_one():
    cache: RecentCache[int, int] = RecentCache(ttl_s=60, max_entries=3)
    for i in range(4):
        cache.put(i, i)
    assert [cache.get(i) for i in range(4)] == [None, 1, 2, 3]
    cache.forget(2)
    assert cache.get(2) is None


def test_a_ttl_of_zero_remembers_nothing():
    cache: RecentCache[str, str] = RecentCache(ttl_s=0)
    cache.put("k", "c_1")
    assert cache.get("k") is None
