"""Who is calling the attacker API: the admin (a token from the environment) or a user (a token of the
user store). A user sees, cancels and downloads only its own campaigns; the admin sees all of them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pydantic import SecretStr

from bbrange.attacker.campaigns.storage.records import CampaignRecord
from bbrange.attacker.campaigns.storage.users import UserStore
from bbrange.shared.http_errors import ApiError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    user_id: str | None  # None for the admin
    name: str
    admin: bool = False

    def may_see(self, record: CampaignRecord) -> bool:
        return self.admin or (record.owner is not None and record.owner == self.user_id)


def identify(users: UserStore, admin_token: SecretStr | None, authorization: str | None) -> Caller:
    """The caller behind 'Authorization: Bearer <token>': 401 for none or an unknown one, 403 if revoked."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "send your token as 'Authorization: Bearer <token>' (an admin creates "
                                            "users and their tokens: bbrange attack users create)", headers=_CHALLENGE)
    if admin_token is not None and secrets.compare_digest(token.encode(), admin_token.get_secret_value().encode()):
        return Caller(None, "admin", admin=True)
    user = users.for_token(token)
    if user is None:
        raise ApiError(401, "unauthorized", "unknown token", headers=_CHALLENGE)
    if user.revoked:
        raise ApiError(403, "revoked", "this token has been revoked")
    return Caller(user.id, user.name)
