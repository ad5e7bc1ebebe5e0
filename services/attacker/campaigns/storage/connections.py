"""Redis connections of the campaign service: health-checked, and retrying with backoff.

A pooled connection that Redis dropped (a restart) is noticed by a PING before it is reused, so a restart
costs no failed request. On the campaign path (the workers: the store, the lease, the RQ worker itself)
every call is retried with exponential backoff for `retry_s` seconds, so a Redis outage of that length is
ridden out instead of killing the worker and its campaign. The API retries briefly and answers 503 beyond.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

_BACKOFF_BASE_S = 0.1
_BACKOFF_CAP_S = 2.0


def retries_for(retry_s: float) -> int:
    """How many retries of ExponentialBackoff(cap 2 s, base 0.1 s) add up to at least retry_s of waiting."""
    waited, n = 0.0, 0
    while waited < retry_s:
        n += 1
        waited += min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**n)
    return n


def connect(url: str, *, retry_s: float, socket_timeout_s: float | None = 10.0) -> redis.Redis:
    """A client that PINGs idle pooled connections before reuse and retries connection errors and timeouts
    for about retry_s seconds (at least once, for the connection a restart broke)."""
    return redis.Redis.from_url(
        url, socket_timeout=socket_timeout_s, socket_connect_timeout=5, health_check_interval=5,
        retry=Retry(ExponentialBackoff(cap=_BACKOFF_CAP_S, base=_BACKOFF_BASE_S), max(1, retries_for(retry_s))),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
