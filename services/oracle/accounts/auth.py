"""Who is calling: a client by its API key (refused when unknown, revoked, or sent from an address that has sent
too many unknown keys), or the admin by the admin token. Both come as 'Authorization: Bearer <token>'. The web
layer only adapts these (api.dependencies); the predict path calls `authenticate` itself (serving.answering)."""

from __future__ import annotations

import secrets

from pydantic import SecretStr

from bbrange.oracle.accounts.keys import ClientStore
from bbrange.oracle.accounts.throttle import unknown_keys_refusal
from bbrange.shared.http_errors import ApiError


def bearer_token(authorization: str | None) -> str | None:
    """The token of an 'Authorization: Bearer <token>' header; None for any other header or none."""
    scheme, _, token = (authorization or "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


async def authenticate(clients: ClientStore, authorization: str | None, source: str, failure_limit: int, *,
                       charge_follows: bool = False) -> str:
    """The client id behind 'Authorization: Bearer <key>'; 401 for a missing or unknown key, 403 if revoked.

    With charge_follows (the predict path, whose charge refuses a revoked client in Redis) a key resolved in the
    last BBRANGE_KEY_CACHE_TTL_S seconds costs no round trip.

    A known key is always accepted, whatever its address sent before: the campaigns of many users may leave
    from one address. An unknown key costs one Redis round trip, and once its source address has sent more than
    failure_limit of them in a minute it gets 429 with Retry-After (before anything else is done for it) until
    the minute is over."""
    key = bearer_token(authorization)
    if key is None:
        raise ApiError(401, "unauthorized", "send your API key as 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    key = key.strip()
    if charge_follows and (cached := clients.cached_client(key)) is not None:
        return cached
    lookup = await clients.resolve_key(key, source)
    if lookup.client_id is None:
        throttled = unknown_keys_refusal(lookup.source_failures, lookup.retry_after_s, failure_limit)
        if throttled is not None:
            raise throttled
        raise ApiError(401, "unauthorized", "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    if lookup.revoked:
        raise ApiError(403, "revoked", "this API key has been revoked")
    return lookup.client_id


def check_admin(admin_token: SecretStr | None, authorization: str | None) -> None:
    """Nothing for the admin token; 403 when the admin API is disabled (no token set), 401 for anything else."""
    if admin_token is None:
        raise ApiError(403, "admin_disabled", "the admin API is disabled: set BBRANGE_ADMIN_TOKEN on the oracle")
    presented = bearer_token(authorization)
    if presented is None or not secrets.compare_digest(presented.encode(), admin_token.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "admin endpoints need 'Authorization: Bearer <admin token>'",
                       headers={"WWW-Authenticate": "Bearer"})
