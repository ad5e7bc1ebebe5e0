"""Users of the attacker API, managed by its admin: create (the token is shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bbrange.attacker.campaigns.api.dependencies import AdminDep, CallerDep, Services
from bbrange.attacker.campaigns.api.responses import CreatedUser
from bbrange.attacker.campaigns.storage.revocation import cancel_queued_campaigns
from bbrange.attacker.campaigns.storage.users import User
from bbrange.shared.http_errors import ApiError, error_responses

router = APIRouter(prefix="/users", tags=["users"])


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@ -]+$", description="A label for people")


class Me(BaseModel):
    user_id: str | None
    name: str
    admin: bool


@router.post("", status_code=201, response_model=CreatedUser,
             responses=error_responses(400, 401, 403, 413, 422, 503))
def create_user(body: NewUser, svc: Services, _: AdminDep) -> CreatedUser:
    """Create a user and its token (admin only)."""
    user, token = svc.users.create(body.name)
    return CreatedUser(user=user, token=token)


@router.get("", response_model=list[User], responses=error_responses(401, 403, 503))
def list_users(svc: Services, _: AdminDep) -> list[User]:
    return svc.users.list()


@router.get("/me", response_model=Me, responses=error_responses(401, 403, 503))
def whoami(who: CallerDep) -> Me:
    """Who this token is."""
    return Me(user_id=who.user_id, name=who.name, admin=who.admin)


@router.post("/{uid}/revoke", response_model=User, responses=error_responses(401, 403, 404, 413, 503))
def revoke_user(uid: str, svc: Services, _: AdminDep) -> User:
    """Later requests with this user's token get 403; its queued campaigns are cancelled (`user_revoked`), the
    others are kept."""
    user = svc.users.revoke(uid)
    if user is None:
        raise ApiError(404, "unknown_user", f"no user {uid[:64]!r}")
    cancel_queued_campaigns(svc.store, svc.samples, svc.connection, uid)
    return user
