"""The campaign's credentials, and which one each request goes out with: the one place where keys are read
from the spec and put on the wire, for every protocol's client.

One key (`api_key`, `auth.token`, `auth.value`, basic auth) is one credential for every request. Several
(`api_keys`, `auth.tokens`, `auth.values`) make a Sybil attacker, whose queries are spread over clients so that
a detector that watches one client at a time (PRADA) sees each of them ask only a share:

- `round_robin` (the one rotation there is): each predict request goes out with the next key still in the
  rotation. Its retries keep its key, as they keep its Idempotency-Key (which the oracle binds to the key's
  client). Metadata requests (model description, usage) go with the key last used; they are not queries.
- A key the endpoint refuses for its budget (429 `budget_exhausted`, or 402) or blocks as a suspected extraction
  (403 `suspected_extraction`) leaves the rotation, even if a few inputs of its budget remain (fewer than the
  batch): the request is sent again, with a new Idempotency-Key, with the next key. When no key is left, the
  refusal of the last one is the campaign's: it stops with `budget_exhausted` (or `suspected_extraction`),
  as a campaign with one key does.
- Per key, by its index in the spec's list (a key never leaves this module): inputs sent and answered, the
  first `X-Extraction-Flagged` the endpoint sent to it and how many queries had been answered by then, and
  why it left the rotation.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass

import httpx

from bbrange.attacker.campaigns.spec.target import BasicAuth, BearerAuth, HeaderAuth, Target

log = logging.getLogger(__name__)

BUDGET_SPENT = "budget_exhausted"
BLOCKED = "suspected_extraction"


@dataclass
class KeyUsage:
    """What one key of the campaign did, by its index in the spec's list."""

    index: int
    inputs_sent: int = 0  # retries and refused requests included
    queries: int = 0  # inputs the endpoint answered (and charged) to this key
    flagged: str | None = None  # the endpoint's first X-Extraction-Flagged for this key
    flagged_after_queries: int | None = None  # the campaign's queries answered (all keys) before it was seen
    flagged_after_key_queries: int | None = None  # this key's own answered queries before it was seen
    dropped: str | None = None  # why it left the rotation: BUDGET_SPENT or BLOCKED


class _Header(httpx.Auth):
    """One key, sent in a header (Authorization: Bearer, or a named header)."""

    def __init__(self, name: str, value: str) -> None:
        self._name, self._value = name, value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._name] = self._value
        yield request


class KeyRing(httpx.Auth):
    """The httpx auth of a target client: every request goes out with the current key; `choose` moves to the
    next one in the rotation, `drop` takes the current one out of it."""

    def __init__(self, credentials: list[httpx.Auth]) -> None:
        self._credentials = credentials or [httpx.Auth()]  # no auth: a credential that adds nothing
        self.usage = [KeyUsage(i) for i in range(len(self._credentials))]
        self.current = 0
        self._next = 0

    @property
    def several(self) -> bool:
        return len(self._credentials) > 1

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield from self._credentials[self.current].auth_flow(request)

    def choose(self) -> int:
        """The key the next predict request goes out with: the next one still in the rotation, round robin.
        When none is left, the current one again (its refusal is then the campaign's, as with one key)."""
        n = len(self._credentials)
        for step in range(n):
            i = (self._next + step) % n
            if self.usage[i].dropped is None:
                self.current, self._next = i, (i + 1) % n
                break
        return self.current

    def use(self, index: int) -> None:
        """Send the next requests with this key (the metadata checks of every key)."""
        self.current = index

    def drop(self, reason: str, refusal: Exception) -> bool:
        """Take the current key out of the rotation (for `refusal`); whether another is left to carry on with."""
        self.usage[self.current].dropped = reason
        left = sum(k.dropped is None for k in self.usage)
        if left:
            log.warning("%s leaves the rotation (%s); %d keys carry on", self.name(), refusal, left)
        return left > 0

    def sent(self, inputs: int) -> None:
        self.usage[self.current].inputs_sent += inputs

    def answered(self, inputs: int) -> None:
        self.usage[self.current].queries += inputs

    def flagged(self, value: str, campaign_answered: int) -> None:
        key = self.usage[self.current]
        if key.flagged is None:
            key.flagged, key.flagged_after_queries = value, campaign_answered
            key.flagged_after_key_queries = key.queries

    def name(self) -> str:
        """How a message names the current key: by its index, where there are several."""
        return f"key {self.current} of {len(self._credentials)}" if self.several else "the key"


def key_ring(target: Target) -> KeyRing:
    """The target's credentials, in the spec's order."""
    auth = target.auth
    if target.api_key is not None or target.api_keys is not None:
        keys = [target.api_key] if target.api_key is not None else target.api_keys or []
        return KeyRing([_Header("Authorization", f"Bearer {k.get_secret_value()}") for k in keys])
    if isinstance(auth, BearerAuth):
        tokens = [auth.token] if auth.token is not None else auth.tokens or []
        return KeyRing([_Header("Authorization", f"Bearer {t.get_secret_value()}") for t in tokens])
    if isinstance(auth, HeaderAuth):
        values = [auth.value] if auth.value is not None else auth.values or []
        return KeyRing([_Header(auth.name, v.get_secret_value()) for v in values])
    if isinstance(auth, BasicAuth):
        return KeyRing([httpx.BasicAuth(auth.username, auth.password.get_secret_value())])
    return KeyRing([])
