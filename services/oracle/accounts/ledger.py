"""The oracle's accounts in Redis, as one object the app keeps: clients and their API keys (keys.py), query
budgets (budgets.py); throttling (throttle.py) runs inside their scripts. Who is calling is decided in auth.py."""

from __future__ import annotations

from redis.asyncio import Redis

from bbrange.oracle.accounts.budgets import Budgets
from bbrange.oracle.accounts.keys import AccountKeys, ClientStore


class Ledger:
    def __init__(self, redis: Redis, prefix: str, key_cache_ttl_s: float = 0.0) -> None:
        self.redis = redis
        self.keys = AccountKeys(prefix)
        self.clients = ClientStore(redis, self.keys, key_cache_ttl_s)
        self.budgets = Budgets(redis, self.keys)
