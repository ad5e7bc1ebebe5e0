"""Blacklight's state in Redis, shared by every client of a model: one Lua script call per chunk of queries looks
each query up, stores it, counts it for its client and links the clients whose queries it matched.

    {prefix}:bl:{model}:{layout}:{bucket}:{shard}   hash: field = a hash's 6-byte tag (the high 48 bits; the shard
                                                     is its low bits), value = the 4-byte ids of the (at most
                                                     keep_per_hash, most recent) queries that had it; field
                                                     "o" + id = the client that sent that query, and its epoch
    {prefix}:bl:{model}:{layout}:{bucket}:n          fingerprints stored in the bucket (its cap: per_bucket)
    {prefix}:detect:{client}:{model}:blacklight      hash: queries, matched, matched_other, max_shared,
                                                     first_match_at (the client's counters for this model)
    ... :blacklight:linked                           set: the other clients whose queries matched this client's,
                                                     or that matched its queries (at most 64)
    ... :blacklight:recent                           list: positions of its last flag_matches matches (the flag rule)

`layout` names the fingerprint settings and the shard count, so a changed configuration never mixes fingerprints
that cannot match. Time is cut into buckets of retention_s / buckets; a query is stored in the current one and
looked up in the live ones; every key of a bucket expires when the bucket is retention_s old (a TTL per key, so
nothing has to sweep). An id is a hash of the exact input: a query whose input is already stored in the current
bucket is an exact re-send (an Idempotency-Key retry the oracle answered again, a picture asked twice, one picture
many clients ask): it is neither a match of that input nor stored again.

Size: a stored query costs S tags and ids in listpack-encoded hashes (~14 bytes each: a 6-byte field, a 4-byte id,
their headers) plus its owner field; the shard count is chosen so that a full bucket holds ~96 fields per shard,
under Redis's hash-max-listpack-entries (128), where a hash stays a listpack. Measured with MEMORY USAGE of every
key (benchmarks/detection_blacklight.py; tests/oracle/test_detection_blacklight.py holds it under 2 KB): ~1 KB per
stored MNIST query, 863 B at the default cap. Redis spends ~0.3 ms per query in the script (~130 commands).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from redis.asyncio import Redis

from bbrange.oracle.detection.config import BlacklightConfig

CHUNK = 32  # queries per script call: a call holds Redis for ~32 × 0.3 ms, other clients' commands wait no longer
_FIELDS_PER_SHARD = 96

# ARGV: 1 key base ("{prefix}:bl:{model}:{layout}:"), 2 current bucket, 3 live buckets, 4 expiry of the current
# bucket's keys (unix s), 5 per-bucket cap, 6 T, 7 bytes of ids kept per hash, 8 shards, 9 client, 10 the client's
# counters key, 11 the client's detection hash (its blacklight_epoch: a clear raises it, and the client's queries
# stored before no longer count against it), 12 flag_matches, 13 flag_window, 14 detect prefix
# ("{prefix}:detect:"), 15 model; then one ARGV per query: its 4-byte id, then 10 bytes per hash (the 4 hex digits
# of its shard, its 6-byte tag). Returns {best shared count per query}, {matched client per query ('' none)},
# {1 stored, 0 re-send, -1 over the cap}, the client's queries before this call, the position of a new alarm or -1.
_SCRIPT = """
local base, now, live, expire_at = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local cap, T, keep, shards = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local client, stats = ARGV[9], ARGV[10]
local epoch = redis.call('HGET', ARGV[11], 'blacklight_epoch') or '0'
local k, W, detect, model = tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14], ARGV[15]
local me = client .. ' ' .. epoch
local count_key = base .. now .. ':n'
local stored = tonumber(redis.call('GET', count_key) or '0')
local before = tonumber(redis.call('HGET', stats, 'queries') or '0')
local function owner_key(prefix, id)
  return prefix .. string.format('%04x', (string.byte(id, 1) * 256 + string.byte(id, 2)) % shards)
end
local best, whom, status, touched = {}, {}, {}, {}
local matched, matched_other, max_shared, alarm = 0, 0, 0, -1
local recent_key = stats .. ':recent'
for q = 16, #ARGV do
  local rec = ARGV[q]
  local id = string.sub(rec, 1, 4)
  local resent, current, top, found, owner, looked = false, {}, 0, false, '', 0
  for b = now, now - live + 1, -1 do
    local prefix = base .. b .. ':'
    local counts = {}
    for i = 5, #rec, 10 do
      local v = redis.call('HGET', prefix .. string.sub(rec, i, i + 3), string.sub(rec, i + 4, i + 9))
      if b == now then current[i] = v end
      if v then
        for j = 1, #v, 4 do
          local other = string.sub(v, j, j + 3)
          if other == id then
            if b == now then resent = true end
          else
            counts[other] = (counts[other] or 0) + 1
          end
        end
      end
    end
    for other, n in pairs(counts) do
      if n >= T and (owner == client or not found) and looked < 8 then
        -- whose query it matched: another client's, this client's, or this client's from before a clear (ignored)
        looked = looked + 1
        local o = redis.call('HGET', owner_key(prefix, other), 'o' .. other) or ''
        local sep = string.find(o, ' ', 1, true)
        local o_client = sep and string.sub(o, 1, sep - 1) or '?'
        if o_client ~= client or o == me then
          if n > top then top = n end
          if not found or o_client ~= client then owner = o_client end
          found = true
        end
      elseif (n < T or found) and n > top then
        top = n
      end
    end
  end
  best[#best + 1] = top
  if top > max_shared then max_shared = top end
  local position = before + q - 15
  if found then
    whom[#whom + 1] = owner
    matched = matched + 1
    if owner ~= client and owner ~= '?' then  -- '?': its owner field is gone (not expected)
      matched_other = matched_other + 1
      local linked = stats .. ':linked'
      if redis.call('SCARD', linked) < 64 then redis.call('SADD', linked, owner) end
      local theirs = detect .. owner .. ':' .. model .. ':blacklight:linked'
      if redis.call('SCARD', theirs) < 64 then redis.call('SADD', theirs, client) end
    end
    redis.call('HSETNX', stats, 'first_match_at', position)
    redis.call('LPUSH', recent_key, position)
    redis.call('LTRIM', recent_key, 0, k - 1)
    local kth = tonumber(redis.call('LINDEX', recent_key, k - 1) or '-1')
    if alarm < 0 and kth >= 0 and position - kth < W then alarm = position end
  else
    whom[#whom + 1] = ''
  end
  if resent then
    status[#status + 1] = 0
  elseif stored >= cap then
    status[#status + 1] = -1
  else
    stored = stored + 1
    status[#status + 1] = 1
    local prefix = base .. now .. ':'
    for i = 5, #rec, 10 do
      local key = prefix .. string.sub(rec, i, i + 3)
      local v = (current[i] or '') .. id
      if #v > keep then v = string.sub(v, #v - keep + 1) end
      redis.call('HSET', key, string.sub(rec, i + 4, i + 9), v)
      -- a field that was there means a key that was there, with its expiry (every key is made here, with one)
      if not current[i] and not touched[key] then touched[key] = true; redis.call('EXPIREAT', key, expire_at) end
    end
    local key = owner_key(prefix, id)
    redis.call('HSET', key, 'o' .. id, me)
    if not touched[key] then touched[key] = true; redis.call('EXPIREAT', key, expire_at) end
  end
end
redis.call('SET', count_key, stored)
redis.call('EXPIREAT', count_key, expire_at)
local n = #ARGV - 15
redis.call('HINCRBY', stats, 'queries', n)
if matched > 0 then
  redis.call('HINCRBY', stats, 'matched', matched)
  redis.call('HINCRBY', stats, 'matched_other', matched_other)
  local old = tonumber(redis.call('HGET', stats, 'max_shared') or '0')
  if max_shared > old then redis.call('HSET', stats, 'max_shared', max_shared) end
end
return {best, whom, status, before, alarm}
"""


@dataclass(frozen=True)
class Observed:
    """What one call learnt about a client's queries, in order."""

    shared: list[int]  # the most hashes each query shared with one earlier query (0: none)
    matched_client: list[str]  # per query, the client whose query it matched ('' none, '?' unknown)
    stored: list[int]  # 1 stored, 0 an exact re-send (not stored again, not a match of itself), -1 over the cap
    queries_before: int  # the client's queries of the model Blacklight had seen before these
    alarm_at: int | None  # the client's query (position) at which the flag rule fired first, in this call


@dataclass(frozen=True)
class ClientBlacklight:
    queries: int
    matched: int
    matched_other: int
    max_shared: int
    first_match_at: int | None
    linked: list[str]


def shard_count(config: BlacklightConfig) -> int:
    """Shards per bucket: a power of two with ~96 fields each when the bucket is full (16 to 65,536)."""
    wanted = config.per_bucket * (config.hashes + 1) / _FIELDS_PER_SHARD
    return int(min(max(2 ** int(np.ceil(np.log2(max(wanted, 1)))), 16), 65_536))


def layout(config: BlacklightConfig) -> str:
    """8 hex digits naming what a stored fingerprint depends on."""
    parts = (config.quantization, config.window, config.stride, config.hashes, config.salt_seed, shard_count(config),
             config.keep_per_hash)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:8]


@lru_cache(maxsize=4)
def _hex(shards: int) -> np.ndarray:
    """(shards, 4) ASCII hex digits of every shard number."""
    return np.frombuffer("".join(f"{i:04x}" for i in range(shards)).encode(), np.uint8).reshape(shards, 4)


def records(ids: list[bytes], fps: np.ndarray, shards: int) -> list[bytes]:
    """One script argument per query: its id, then per hash the 4 hex digits of its shard and its 6-byte tag."""
    n, s = fps.shape
    packed = np.empty((n, s, 10), np.uint8)
    packed[:, :, :4] = _hex(shards)[(fps & np.uint64(shards - 1)).astype(np.int64)]
    packed[:, :, 4:] = (fps >> np.uint64(16)).astype(">u8").view(np.uint8).reshape(n, s, 8)[:, :, 2:]
    valid = (fps != 0).sum(axis=1)  # padding (rows with fewer distinct windows) sits at the end of a row
    rows = packed.reshape(n, s * 10)
    return [query_id + rows[i, : 10 * int(valid[i])].tobytes() for i, query_id in enumerate(ids)]


class BlacklightStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_SCRIPT)

    def base(self, model: str, config: BlacklightConfig) -> str:
        return f"{self.prefix}:bl:{model}:{layout(config)}:"

    def client_key(self, client_id: str, model: str) -> str:
        return f"{self.prefix}:detect:{client_id}:{model}:blacklight"

    async def observe(self, client_id: str, model: str, ids: list[bytes], fps: np.ndarray, config: BlacklightConfig,
                      now: float | None = None) -> Observed:
        """Look up, store and count one client's queries (in order), in one pipelined round trip."""
        now = time.time() if now is None else now
        bucket = int(now // config.bucket_s)
        expire_at = (bucket + config.buckets) * config.bucket_s
        shards = shard_count(config)
        recs = records(ids, fps, shards)
        head: list[str | int | bytes] = [
            self.base(model, config), bucket, config.buckets, expire_at, config.per_bucket, config.threshold,
            4 * config.keep_per_hash, shards, client_id, self.client_key(client_id, model),
            f"{self.prefix}:detect:{client_id}", config.flag_matches, config.flag_window, f"{self.prefix}:detect:",
            model]
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in range(0, len(recs), CHUNK):
                await self._script(keys=[], args=[*head, *recs[i : i + CHUNK]], client=pipe)
            replies = await pipe.execute()
        shared: list[int] = []
        whom: list[str] = []
        stored: list[int] = []
        alarm = None
        for best, matched, status, _, alarm_at in replies:
            shared += [int(v) for v in best]
            whom += [v.decode() if isinstance(v, bytes) else str(v) for v in matched]
            stored += [int(v) for v in status]
            if alarm is None and int(alarm_at) >= 0:
                alarm = int(alarm_at)
        return Observed(shared, whom, stored, int(replies[0][3]) if replies else 0, alarm)

    async def client(self, client_id: str, model: str) -> ClientBlacklight:
        key = self.client_key(client_id, model)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(key, ["queries", "matched", "matched_other", "max_shared", "first_match_at"])
            pipe.smembers(key + ":linked")
            (queries, matched, other, top, first), linked = await pipe.execute()
        return ClientBlacklight(int(queries or 0), int(matched or 0), int(other or 0), int(top or 0),
                                int(first) if first is not None else None,
                                sorted(v.decode() if isinstance(v, bytes) else v for v in linked))
