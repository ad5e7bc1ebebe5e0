"""Idempotent predict requests: a retried request is answered once and charged once.

A client whose response was lost (a read timeout, a dropped connection, an oracle process that died) cannot
know whether the oracle charged the batch. It retries with the same `Idempotency-Key`; the oracle then sends
back the labels it computed the first time instead of charging the batch again, so the client's count of
answered inputs and the ledger stay equal. Keys are scoped to the client and kept for `replay_ttl_s`.

The claim of a key and the charge of its batch are one atomic step (one Lua script), and the claim names the
oracle process answering it. Every process keeps a liveness key in Redis alive; a retry that finds a claim
whose process is gone (killed after charging, before answering) takes the claim over and answers the batch
without charging it again, within seconds rather than after a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bbrange.oracle.accounts.budgets import CHARGE_FUNCTION, ChargeResult, ChargeStatus

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# A process that has not renewed its liveness key for this long is gone; its claims pass to the retries.
LIVENESS_TTL_S = 5.0

# KEYS: replay key, client key. ARGV: digest, inputs, ttl, this process, liveness key prefix.
# Returns {status, labels, remaining, retry_after_s, charge status}: 0 claimed and charged now, 1 answered
# before (labels), 2 being answered by a live process, 3 the key belongs to another request, 4 taken over from
# a process that is gone (charged by it, not again), 5 not charged (nothing claimed; the charge status says why).
# A revoked client is refused first (5, revoked), even a replay: its key may have been resolved from a cache.
_CLAIM = CHARGE_FUNCTION + """
if redis.call('HGET', KEYS[2], 'revoked') == '1' then return {5, '', 0, 0, -4} end
local h = redis.call('HMGET', KEYS[1], 'digest', 'labels', 'owner')
if h[1] then
  if h[1] ~= ARGV[1] then return {3, '', 0, 0, 0} end
  if h[2] then return {1, h[2], 0, 0, 0} end
  if (not h[3]) or redis.call('EXISTS', ARGV[5] .. h[3]) == 1 then return {2, '', 0, 0, 0} end
  redis.call('HSET', KEYS[1], 'owner', ARGV[4])
  local c = redis.call('HMGET', KEYS[2], 'budget', 'used')
  return {4, '', (tonumber(c[1]) or 0) - (tonumber(c[2]) or 0), 0, 0}
end
local r = charge(KEYS[2], tonumber(ARGV[2]))
if r[1] ~= 1 then return {5, '', r[2], r[3], r[1]} end
redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'owner', ARGV[4], 'charged', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {0, '', r[2], 0, 1}
"""


class ClaimStatus(Enum):
    CLAIMED = 0
    ANSWERED = 1
    IN_PROGRESS = 2
    KEY_REUSED = 3
    TAKEN_OVER = 4
    NOT_CHARGED = 5


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    labels_npy: bytes = b""  # the first answer, when ANSWERED
    charge: ChargeResult | None = None  # CLAIMED and TAKEN_OVER: what is left; NOT_CHARGED: why

    @property
    def must_answer(self) -> bool:
        """This request holds the claim, and its batch is paid for."""
        return self.status in (ClaimStatus.CLAIMED, ClaimStatus.TAKEN_OVER)


def request_digest(model: str, content_type: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join((model.encode(), content_type.encode(), body))).hexdigest()


class ReplayStore:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.process_id = secrets.token_hex(8)
        self._claim = redis.register_script(_CLAIM)

    def _key(self, client_id: str, idempotency_key: str) -> str:
        return f"{self.prefix}:replay:{client_id}:{idempotency_key}"

    @property
    def _liveness_prefix(self) -> str:
        return f"{self.prefix}:oracle-process:"

    async def heartbeat(self) -> None:
        await self.redis.set(self._liveness_prefix + self.process_id, 1, px=int(LIVENESS_TTL_S * 1000))

    async def keep_alive(self) -> None:
        """Renew this process's liveness key until cancelled (run for the process's lifetime)."""
        while True:
            try:
                await self.heartbeat()
            except RedisError as e:
                log.warning("cannot renew this oracle process's liveness: %s", e)
            await asyncio.sleep(LIVENESS_TTL_S / 5)

    async def stop(self) -> None:
        """This process stops answering: its claims pass to the retries at once."""
        with contextlib.suppress(RedisError):
            await self.redis.delete(self._liveness_prefix + self.process_id)

    async def claim_and_charge(self, client_key: str, client_id: str, idempotency_key: str, digest: str,
                               inputs: int) -> Claim:
        status, labels, remaining, retry, charge = await self._claim(
            keys=[self._key(client_id, idempotency_key), client_key],
            args=[digest, inputs, self.ttl_s, self.process_id, self._liveness_prefix])
        result = ClaimStatus(int(status))
        paid = None
        if result in (ClaimStatus.CLAIMED, ClaimStatus.TAKEN_OVER, ClaimStatus.NOT_CHARGED):
            paid = ChargeResult(ChargeStatus(int(charge) or 1), int(remaining), int(retry))
        return Claim(result, bytes(labels), paid)

    async def answered(self, client_id: str, idempotency_key: str, labels_npy: bytes) -> None:
        key = self._key(client_id, idempotency_key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "labels", labels_npy)
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def release(self, client_id: str, idempotency_key: str) -> None:
        """Forget a claim whose batch was refunded (inference failed), so a retry is charged anew."""
        await self.redis.delete(self._key(client_id, idempotency_key))
