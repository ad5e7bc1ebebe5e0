"""Idempotent predict requests: a retried request is answered once and charged once.

A client whose response was lost (a read timeout, a dropped connection) cannot know whether the oracle
charged the batch. It retries with the same `Idempotency-Key`; the oracle then sends back the labels it
computed the first time instead of charging the batch again, so the client's count of answered inputs
and the ledger stay equal. Keys are scoped to the client and kept for a limited time (`replay_ttl_s`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# A claim whose request never finished (the process died, Redis failed between claim and charge) must
# not block the key for long; a request that is merely queued finishes well within this.
PENDING_TTL_S = 120

# Returns {status, labels}: 0 claimed now, 1 answered before (labels), 2 still being answered, 3 the key
# belongs to another request. One script, so two concurrent retries cannot both claim the key.
_CLAIM = """
local digest = redis.call('HGET', KEYS[1], 'digest')
if not digest then
  redis.call('HSET', KEYS[1], 'digest', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {0, ''}
end
if digest ~= ARGV[1] then return {3, ''} end
local labels = redis.call('HGET', KEYS[1], 'labels')
if not labels then return {2, ''} end
return {1, labels}
"""


class ClaimStatus(Enum):
    CLAIMED = 0
    ANSWERED = 1
    IN_PROGRESS = 2
    KEY_REUSED = 3


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    labels_npy: bytes = b""  # the first answer, when ANSWERED


def request_digest(model: str, content_type: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join((model.encode(), content_type.encode(), body))).hexdigest()


class ReplayStore:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._claim = redis.register_script(_CLAIM)

    def _key(self, client_id: str, idempotency_key: str) -> str:
        return f"{self.prefix}:replay:{client_id}:{idempotency_key}"

    async def claim(self, client_id: str, idempotency_key: str, digest: str) -> Claim:
        status, labels = await self._claim(keys=[self._key(client_id, idempotency_key)],
                                           args=[digest, min(PENDING_TTL_S, self.ttl_s)])
        return Claim(ClaimStatus(int(status)), bytes(labels))

    async def answered(self, client_id: str, idempotency_key: str, labels_npy: bytes) -> None:
        key = self._key(client_id, idempotency_key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "labels", labels_npy)
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def release(self, client_id: str, idempotency_key: str) -> None:
        """Forget a claim whose request was not answered (refused or failed), so a retry is charged anew."""
        await self.redis.delete(self._key(client_id, idempotency_key))
