"""Clients and their API keys, kept in Redis.

API keys are stored only as sha256 digests (they are 256-bit random tokens, so a fast hash suffices). Resolving a
key to its client is one round trip, which also counts an unknown key against its source address (throttle.py);
a key resolved moments ago costs none (a key never changes client, and revocation is checked by every charge).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from bbrange.oracle.accounts.throttle import AUTH_WINDOW_S, COUNT_UNKNOWN_KEY
from bbrange.oracle.serving.recent_cache import RecentCache

API_KEY_PREFIX = "bbr_"

# KEYS: the key digest's entry, the source's failure counter. ARGV: the failure window, the prefix of client keys
# (the client id completes it). Returns {client id or '', failures of the source, seconds left in its window,
# revoked (1/0)}.
_RESOLVE_KEY = COUNT_UNKNOWN_KEY + """
local client = redis.call('GET', KEYS[1])
if client then return {client, 0, 0, redis.call('HGET', ARGV[2] .. client, 'revoked') == '1' and 1 or 0} end
local failures = count_unknown_key(KEYS[2], ARGV[1])
return {'', failures[1], failures[2], 0}
"""


@dataclass(frozen=True)
class AccountKeys:
    """Where the accounts live in Redis, under one prefix."""

    prefix: str

    def client(self, client_id: str) -> str:
        return f"{self.prefix}:client:{client_id}"

    def api_key(self, digest: str) -> str:
        return f"{self.prefix}:apikey:{digest}"

    @property
    def index(self) -> str:
        return f"{self.prefix}:clients"

    def auth_failures(self, source: str) -> str:
        return f"{self.prefix}:authfail:{source}"


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


@dataclass(frozen=True)
class KeyLookup:
    client_id: str | None  # None: an unknown key
    source_failures: int  # unknown keys from the same source address in this minute (0 for a known key)
    retry_after_s: int  # seconds until that minute is over
    revoked: bool = False


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class ClientStore:
    def __init__(self, redis: Redis, keys: AccountKeys, key_cache_ttl_s: float = 0.0) -> None:
        self.redis = redis
        self.keys = keys
        # API key digest -> client id, of keys that resolved to an unrevoked client.
        self._known_keys: RecentCache[str, str] = RecentCache(key_cache_ttl_s)
        self._resolve_key = redis.register_script(_RESOLVE_KEY)

    def cached_client(self, api_key: str) -> str | None:
        """The client id of a key resolved moments ago (no round trip); None when it must be resolved. Only for
        callers whose next step is a charge (which refuses a revoked client)."""
        return self._known_keys.get(hash_api_key(api_key))

    async def resolve_key(self, api_key: str, source: str) -> KeyLookup:
        """The client behind api_key; an unknown key also counts as a failure of `source` in this minute."""
        digest = hash_api_key(api_key)
        client_id, failures, ttl, revoked = await self._resolve_key(
            keys=[self.keys.api_key(digest), self.keys.auth_failures(source)],
            args=[AUTH_WINDOW_S, self.keys.client("")])
        client = client_id.decode() if isinstance(client_id, bytes) else str(client_id)
        if client and not int(revoked):
            self._known_keys.put(digest, client)
        return KeyLookup(client or None, int(failures), max(int(ttl), 1), bool(int(revoked)))

    async def create(self, name: str, budget: int, rate_per_minute: int | None) -> tuple[Client, str]:
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
            pipe.hset(self.keys.client(client_id), mapping=fields)
            pipe.set(self.keys.api_key(digest), client_id)
            pipe.sadd(self.keys.index, client_id)
            await pipe.execute()
        return Client(client_id, name, budget, 0, rate_per_minute, False, created), api_key

    async def get(self, client_id: str) -> Client | None:
        raw = await self.redis.hgetall(self.keys.client(client_id))
        if not raw:
            return None
        f = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
             for k, v in raw.items()}
        rate = int(f.get("rate_per_minute", 0))
        return Client(client_id, f["name"], int(f["budget"]), int(f["used"]), rate or None,
                      f.get("revoked") == "1", f["created_at"])

    async def list_all(self) -> list[Client]:
        ids = sorted(i.decode() if isinstance(i, bytes) else i for i in await self.redis.smembers(self.keys.index))
        clients = [await self.get(i) for i in ids]
        return [c for c in clients if c is not None]

    async def top_up(self, client_id: str, amount: int) -> Client | None:
        """Raise the client's budget (what it has used stays)."""
        key = self.keys.client(client_id)
        if not await self.redis.exists(key):
            return None
        await self.redis.hincrby(key, "budget", amount)
        return await self.get(client_id)

    async def revoke(self, client_id: str) -> Client | None:
        """Mark the client revoked; its key keeps resolving so callers learn it was revoked (403),
        not that it never existed (401)."""
        key = self.keys.client(client_id)
        if not await self.redis.exists(key):
            return None
        await self.redis.hset(key, "revoked", 1)
        return await self.get(client_id)
