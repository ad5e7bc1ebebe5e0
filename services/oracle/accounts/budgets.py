"""Query budgets: charging a batch and refunding a charge that bought nothing.

Charging a batch is one Lua step: all of its inputs are charged or none, and concurrent oracle processes sharing
the Redis can never answer more inputs than a client's budget. The same step refuses a revoked client and applies
the client's rate limit (throttle.py), so the predict path makes one round trip for all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis

from bbrange.oracle.accounts.keys import AccountKeys
from bbrange.oracle.accounts.throttle import RATE_LIMIT_FUNCTION

# charge(key, n) returns {status, remaining, retry_after_s} (status: ChargeStatus). A Lua function, so that the
# idempotent claim of a batch (serving/replays.py) charges it in the same atomic step.
CHARGE_FUNCTION = RATE_LIMIT_FUNCTION + """
local function charge(key, n)
  local c = redis.call('HMGET', key, 'budget', 'used', 'revoked', 'rate_per_minute', 'rate_window', 'rate_count')
  if not c[1] then return {-3, 0, 0} end
  if c[3] == '1' then return {-4, 0, 0} end
  local remaining = tonumber(c[1]) - tonumber(c[2])
  if n > remaining then return {-1, remaining, 0} end
  local refused = within_rate(key, n, c[4], c[5], c[6], remaining)
  if refused then return refused end
  redis.call('HINCRBY', key, 'used', n)
  return {1, remaining - n, 0}
end
"""
_CHARGE = CHARGE_FUNCTION + "return charge(KEYS[1], tonumber(ARGV[1]))"

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


class Budgets:
    def __init__(self, redis: Redis, keys: AccountKeys) -> None:
        self.keys = keys
        self._charge = redis.register_script(_CHARGE)
        self._refund = redis.register_script(_REFUND)

    async def charge(self, client_id: str, inputs: int) -> ChargeResult:
        status, remaining, retry = await self._charge(keys=[self.keys.client(client_id)], args=[inputs])
        return ChargeResult(ChargeStatus(int(status)), int(remaining), int(retry))

    async def refund(self, client_id: str, inputs: int) -> None:
        await self._refund(keys=[self.keys.client(client_id)], args=[inputs])
