"""Clients, API keys and query budgets, kept in Redis.

API keys are stored only as sha256 digests (they are 256-bit random tokens, so a fast hash suffices).
Charging a batch is one Lua script: all of its inputs are charged or none, and concurrent oracle
processes sharing the Redis can never answer more inputs than a client's budget.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from bbrange.oracle.serving.recent_cache import RecentCache

API_KEY_PREFIX = "bbr_"

# charge(key, n) returns {status, remaining, retry_after_s}. Redis TIME is used so every oracle process agrees
# on the rate-limit window whatever its own clock says. A Lua function, so that the idempotent claim of a
# batch (replays.py) charges it in the same atomic step.
CHARGE_FUNCTION = """
local function charge(key, n)
  local c = redis.call('HMGET', key, 'budget', 'used', 'revoked', 'rate_per_minute', 'rate_window', 'rate_count')
  if not c[1] then return {-3, 0, 0} end
  if c[3] == '1' then return {-4, 0, 0} end
  local remaining = tonumber(c[1]) - tonumber(c[2])
  if n > remaining then return {-1, remaining, 0} end
  local rate = tonumber(c[4] or '0') or 0
  if rate > 0 then
    if n > rate then return {-5, remaining, 0} end
    local now = redis.call('TIME')
    local window = math.floor(tonumber(now[1]) / 60)
    local count = 0
    if tonumber(c[5] or '-1') == window then count = tonumber(c[6] or '0') end
    if count + n > rate then return {-2, remaining, 60 - (tonumber(now[1]) % 60)} end
    redis.call('HSET', key, 'rate_window', window, 'rate_count', count + n)
  end
  redis.call('HINCRBY', key, 'used', n)
  return {1, remaining - n, 0}
end
"""
_CHARGE = CHARGE_FUNCTION + "return charge(KEYS[1], tonumber(ARGV[1]))"

# Resolves an API key digest to its client id, and whether it is revoked, in one round trip; an unknown key is
# counted against its source address in a fixed window. Returns {client id or '', failures of the source, seconds
# left in its window, revoked (1/0)}. ARGV[2] is the prefix of client keys (the client id completes it).
_RESOLVE_KEY = """
local client = redis.call('GET', KEYS[1])
if client then return {client, 0, 0, redis.call('HGET', ARGV[2] .. client, 'revoked') == '1' and 1 or 0} end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return {'', n, redis.call('TTL', KEYS[2]), 0}
"""
AUTH_WINDOW_S = 60

# Gives back a charge whose inputs were never answered (inference failed after charging).
_REFUND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'used', -tonumber(ARGV[1]))
return 1
"""


class ChargeStatus(Enum):
    CHARGED = 1
    BUDGET_EXHAUSTED = -1
    RATE_LIMITED = -2
    UNKNOWN_CLIENT = -3
    REVOKED = -4
    BATCH_OVER_RATE = -5


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    remaining: int
    retry_after_s: int


@dataclass(frozen=True)
class KeyLookup:
    client_id: str | None  # None: an unknown key
    source_failures: int  # unknown keys from the same source address in this minute (0 for a known key)
    retry_after_s: int  # seconds until that minute is over
    revoked: bool = False


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    budget: int
    used: int
    rate_per_minute: int | None
    revoked: bool
    created_at: str

    @property
    def remaining(self) -> int:
        return self.budget - self.used


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class Ledger:
    def __init__(self, redis: Redis, prefix: str, key_cache_ttl_s: float = 0.0) -> None:
        self.redis = redis
        self.prefix = prefix
        # API key digest -> client id, of keys that resolved to an unrevoked client. A key never changes client,
        # and revocation is checked by every charge, so a cached key is never answered after its revocation.
        self._known_keys: RecentCache[str, str] = RecentCache(key_cache_ttl_s)
        self._charge = redis.register_script(_CHARGE)
        self._refund = redis.register_script(_REFUND)
        self._resolve_key = redis.register_script(_RESOLVE_KEY)

    def _client_key(self, client_id: str) -> str:
        return f"{self.prefix}:client:{client_id}"

    def _api_key_key(self, digest: str) -> str:
        return f"{self.prefix}:apikey:{digest}"

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}:clients"

    def client_key(self, client_id: str) -> str:
        return self._client_key(client_id)

    def _auth_failures_key(self, source: str) -> str:
        return f"{self.prefix}:authfail:{source}"

    def cached_client(self, api_key: str) -> str | None:
        """The client id of a key resolved moments ago (no round trip); None when it must be resolved. Only for
        callers whose next step is a charge (which refuses a revoked client)."""
        return self._known_keys.get(hash_api_key(api_key))

    async def resolve_key(self, api_key: str, source: str) -> KeyLookup:
        """The client behind api_key; an unknown key also counts as a failure of `source` in this minute."""
        digest = hash_api_key(api_key)
        client_id, failures, ttl, revoked = await self._resolve_key(
            keys=[self._api_key_key(digest), self._auth_failures_key(source)],
            args=[AUTH_WINDOW_S, self._client_key("")])
        client = client_id.decode() if isinstance(client_id, bytes) else str(client_id)
        if client and not int(revoked):
            self._known_keys.put(digest, client)
        return KeyLookup(client or None, int(failures), max(int(ttl), 1), bool(int(revoked)))

    async def create_client(self, name: str, budget: int, rate_per_minute: int | None) -> tuple[Client, str]:
        """Create a client; the API key is returned once and only its digest is kept."""
        client_id = "c_" + secrets.token_hex(6)
        api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_api_key(api_key)
        created = dt.datetime.now(dt.UTC).isoformat()
        fields: dict[FieldT, EncodableT] = {
            "name": name, "budget": budget, "used": 0, "revoked": 0, "created_at": created,
            "rate_per_minute": rate_per_minute or 0, "key_sha256": digest,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._client_key(client_id), mapping=fields)
            pipe.set(self._api_key_key(digest), client_id)
            pipe.sadd(self._index_key, client_id)
            await pipe.execute()
        return Client(client_id, name, budget, 0, rate_per_minute, False, created), api_key

    async def get_client(self, client_id: str) -> Client | None:
        raw = await self.redis.hgetall(self._client_key(client_id))
        if not raw:
            return None
        f = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
             for k, v in raw.items()}
        rate = int(f.get("rate_per_minute", 0))
        return Client(client_id, f["name"], int(f["budget"]), int(f["used"]), rate or None,
                      f.get("revoked") == "1", f["created_at"])

    async def list_clients(self) -> list[Client]:
        ids = sorted(i.decode() if isinstance(i, bytes) else i for i in await self.redis.smembers(self._index_key))
        clients = [await self.get_client(i) for i in ids]
        return [c for c in clients if c is not None]

    async def top_up(self, client_id: str, amount: int) -> Client | None:
        key = self._client_key(client_id)
        if not await self.redis.exists(key):
            return None
        await self.redis.hincrby(key, "budget", amount)
        return await self.get_client(client_id)

    async def revoke(self, client_id: str) -> Client | None:
        """Mark the client revoked; its key keeps resolving so callers learn it was revoked (403),
        not that it never existed (401)."""
        key = self._client_key(client_id)
        if not await self.redis.exists(key):
            return None
        await self.redis.hset(key, "revoked", 1)
        return await self.get_client(client_id)

    async def charge(self, client_id: str, inputs: int) -> ChargeResult:
        status, remaining, retry = await self._charge(keys=[self._client_key(client_id)], args=[inputs])
        return ChargeResult(ChargeStatus(int(status)), int(remaining), int(retry))

    async def refund(self, client_id: str, inputs: int) -> None:
        await self._refund(keys=[self._client_key(client_id)], args=[inputs])
