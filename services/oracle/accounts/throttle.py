"""Throttling: unknown API keys counted per source address in a fixed window, and each client's per-minute rate.

Both are decided in Redis by Lua fragments that run inside the one script of the step they guard (resolving a
key, charging a batch; see keys.py and budgets.py), so throttling never costs a round trip of its own. Redis TIME
is used so that every oracle process agrees on the rate-limit window whatever its own clock says.
"""

from __future__ import annotations

from bbrange.shared.http_errors import ApiError

AUTH_WINDOW_S = 60

# count_unknown_key(key, window_s) -> {unknown keys from the source in this window, seconds left in it}
COUNT_UNKNOWN_KEY = """
local function count_unknown_key(key, window_s)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, window_s) end
  return {n, redis.call('TTL', key)}
end
"""

# within_rate(key, n, per_minute, window, count, remaining): nil when n more inputs fit in the client's rate for
# this minute (they are then counted); otherwise the charge's refusal {status, remaining, retry_after_s}, with
# status -5 for a batch larger than the rate itself and -2 for one that does not fit in what is left of the minute.
# per_minute, window and count are the client's fields rate_per_minute, rate_window and rate_count.
RATE_LIMIT_FUNCTION = """
local function within_rate(key, n, per_minute, window_field, count_field, remaining)
  local rate = tonumber(per_minute or '0') or 0
  if rate <= 0 then return nil end
  if n > rate then return {-5, remaining, 0} end
  local now = redis.call('TIME')
  local window = math.floor(tonumber(now[1]) / 60)
  local count = 0
  if tonumber(window_field or '-1') == window then count = tonumber(count_field or '0') end
  if count + n > rate then return {-2, remaining, 60 - (tonumber(now[1]) % 60)} end
  redis.call('HSET', key, 'rate_window', window, 'rate_count', count + n)
  return nil
end
"""


def unknown_keys_refusal(source_failures: int, retry_after_s: int, failure_limit: int) -> ApiError | None:
    """The 429 for a source address past `failure_limit` unknown keys this minute; None while it is within it."""
    if source_failures <= failure_limit:
        return None
    return ApiError(429, "too_many_auth_failures", f"too many unknown API keys from this address; retry in "
                    f"{retry_after_s} s", {"retry_after_s": retry_after_s}, headers={"Retry-After": str(retry_after_s)})
