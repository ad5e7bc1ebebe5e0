"""The attacker API's users: bearer tokens, created by an admin, stored only as sha256 digests.

A user's token is a 256-bit random string shown once, when the admin creates the user; Redis keeps its
digest (a fast hash suffices for random tokens) and the user's record. Every campaign belongs to the user
who submitted it (`CampaignRecord.owner`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import cast

import redis
from pydantic import BaseModel, Field

from bbrange.attacker.campaigns.storage.records import utcnow

USER_TOKEN_PREFIX = "bbu_"
USER_ID = re.compile(r"^u_[0-9a-f]{12}$")


class User(BaseModel):
    id: str
    name: str = Field(description="A label for people (a team, a person)")
    created_at: datetime
    revoked: bool = False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    def __init__(self, client: redis.Redis, prefix: str = "bbrange:attack") -> None:
        self.redis = client
        self.prefix = prefix

    def _user(self, uid: str) -> str:
        return f"{self.prefix}:user:{uid}"

    def _token(self, digest: str) -> str:
        return f"{self.prefix}:usertoken:{digest}"

    def _all(self) -> str:
        return f"{self.prefix}:users"

    def create(self, name: str) -> tuple[User, str]:
        """A new user and its token; the token is returned once and only its digest is kept."""
        user = User(id="u_" + secrets.token_hex(6), name=name, created_at=utcnow())
        token = USER_TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.redis.pipeline() as pipe:
            pipe.set(self._user(user.id), user.model_dump_json())
            pipe.set(self._token(token_digest(token)), user.id)
            pipe.zadd(self._all(), {user.id: user.created_at.timestamp()})
            pipe.execute()
        return user, token

    def get(self, uid: str) -> User | None:
        if not USER_ID.match(uid):
            return None
        raw = self.redis.get(self._user(uid))
        return None if raw is None else User.model_validate_json(raw)

    def for_token(self, token: str) -> User | None:
        uid = self.redis.get(self._token(token_digest(token)))
        return None if uid is None else self.get(uid.decode() if isinstance(uid, bytes) else str(uid))

    def list(self) -> list[User]:
        ids = [i.decode() for i in cast(list[bytes], self.redis.zrange(self._all(), 0, -1))]
        raws = self.redis.mget([self._user(i) for i in ids]) if ids else []
        return [User.model_validate_json(r) for r in raws if r is not None]

    def revoke(self, uid: str) -> User | None:
        """Later requests with this user's token get 403; its campaigns stay (an admin still sees them). The API
        also cancels those still queued (revocation.py)."""
        user = self.get(uid)
        if user is None:
            return None
        user.revoked = True
        self.redis.set(self._user(uid), user.model_dump_json())
        return user
