"""``/users``: sign-up, the caller's own account, and admin user management (Management API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import AfterValidator
from pydantic.json_schema import SkipJsonSchema

from app.auth.principal import Principal
from app.clients.auth0_errors import AUTH0_BRUTE_FORCE, AUTH0_SUSPICIOUS_IP
from app.clients.management_errors import (
    ManagementBadRequest,
    ManagementConflict,
    ManagementNotFound,
    ManagementRateLimited,
    ManagementRefused,
    ManagementUnavailable,
)
from app.deps.security import CallerToken, CurrentPrincipal, RequireScopes, ServicesDep
from app.http.body_limit import BodyLimitRoute
from app.http.client_ip import client_ip
from app.http.errors import (
    BadRequest,
    Forbidden,
    RateLimited,
    SessionStoreUnavailable,
    UpstreamUnavailable,
)
from app.http.responses import error_responses
from app.users.schemas import (
    AccountDeletion,
    AdminPatch,
    AdminUserOut,
    PasswordChange,
    SelfPatch,
    SignupRequest,
    UserOut,
    UserPageOut,
)
from app.users.service import UserService

router = APIRouter(prefix="/users", tags=["users"], route_class=BodyLimitRoute)


async def user_service(request: Request, services: ServicesDep) -> UserService:
    """The user service over the app's services, built once per app start, not per request."""
    built: tuple[object, UserService] | None = getattr(request.app.state, "user_service", None)
    if built is None or built[0] is not services:
        built = (services, UserService.from_services(services))
        request.app.state.user_service = built
    return built[1]


UsersDep = Annotated[UserService, Depends(user_service)]


def _not_a_dot_segment(user_id: str) -> str:
    # "." and ".." would be resolved as dot segments in the Management API path
    if user_id in {".", ".."}:
        raise ValueError("not a user id")
    return user_id


UserId = Annotated[
    str,
    AfterValidator(_not_a_dot_segment),
    Path(
        min_length=1,
        max_length=256,
        description="An Auth0 user id; URL-encode its `|` as `%7C`.",
        examples=["auth0|65a1b2c3d4e5f6a7b8c9d0e1"],
    ),
]
# what every call to the Management API can answer, after its own bounded retries
_MANAGEMENT = (
    ManagementRateLimited("The identity provider's management API is busy; try again shortly."),
    ManagementRefused,
    ManagementUnavailable,
)
_NO_USER = ManagementNotFound("The user does not exist.")
_REFUSED_PAYLOAD = ManagementBadRequest("Payload validation error: 'Invalid email'.")
_WEAK_PASSWORD = ManagementBadRequest(
    "PasswordStrengthError: Password is too weak", code="weak_password"
)
# changes that need the current password check it by a login at Auth0
_PASSWORD_CHECK = (
    BadRequest("This account has no email to log in with.", code="unsupported"),
    Forbidden("The current password is wrong.", code="invalid_current_password"),
    Forbidden("This account is blocked.", code="user_blocked"),
    RateLimited(AUTH0_BRUTE_FORCE, code="too_many_attempts"),
    RateLimited(AUTH0_SUSPICIOUS_IP, code="too_many_attempts"),
    UpstreamUnavailable,
    SessionStoreUnavailable,
)
CanRead = Annotated[Principal, Depends(RequireScopes("read:users"))]
CanUpdate = Annotated[Principal, Depends(RequireScopes("update:users"))]
CanDelete = Annotated[Principal, Depends(RequireScopes("delete:users"))]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        _REFUSED_PAYLOAD,
        _WEAK_PASSWORD,
        ManagementConflict("An account with this email already exists.", code="user_exists"),
        RateLimited("Too many sign-ups from this address; try again later."),
        *_MANAGEMENT,
    ),
)
async def create_user(
    body: SignupRequest, request: Request, services: ServicesDep, users: UsersDep
) -> UserOut:
    """Sign up with an email, a password and a name (limited per client IP)."""
    ip = client_ip(request, services.settings.trusted_proxies)
    return UserOut.from_auth0(await users.sign_up(body, client_ip=ip))


@router.get("/me", responses=error_responses(_NO_USER, *_MANAGEMENT))
async def get_my_user(principal: CurrentPrincipal, users: UsersDep) -> UserOut:
    """Your own account."""
    return UserOut.from_auth0(await users.get_self(principal.sub))


@router.patch("/me", responses=error_responses(_REFUSED_PAYLOAD, _NO_USER, *_MANAGEMENT))
async def update_my_user(principal: CurrentPrincipal, body: SelfPatch, users: UsersDep) -> UserOut:
    """Change your name, nickname, picture or user_metadata."""
    return UserOut.from_auth0(await users.update_self(principal.sub, body))


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(_WEAK_PASSWORD, *_PASSWORD_CHECK, _NO_USER, *_MANAGEMENT),
)
async def change_my_password(
    principal: CurrentPrincipal,
    token: CallerToken,
    body: PasswordChange,
    request: Request,
    services: ServicesDep,
    users: UsersDep,
) -> None:
    """Change your password; your other sessions end, this one continues."""
    ip = client_ip(request, services.settings.trusted_proxies)
    await users.change_password(principal, token, body, client_ip=ip)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*_PASSWORD_CHECK, _NO_USER, *_MANAGEMENT),
)
async def delete_my_user(
    principal: CurrentPrincipal,
    body: AccountDeletion,
    request: Request,
    services: ServicesDep,
    users: UsersDep,
) -> None:
    """Delete your account (your current password required); every one of your sessions ends."""
    ip = client_ip(request, services.settings.trusted_proxies)
    await users.delete_self(principal, body, client_ip=ip)


@router.get(
    "",
    responses=error_responses(ManagementBadRequest("Query validation error."), *_MANAGEMENT),
)
async def list_users(
    _: CanRead,
    users: UsersDep,
    q: Annotated[
        str | SkipJsonSchema[None],
        Query(
            max_length=1000,
            description="Auth0 user search (Lucene syntax).",
            examples=["email:*@example.com"],
        ),
    ] = None,
    page: Annotated[int, Query(ge=0, le=1000, description="0-based.")] = 0,
    per_page: Annotated[int, Query(ge=1, le=50)] = 50,
) -> UserPageOut:
    """Search users (needs read:users)."""
    found = await users.search(q or None, page, per_page)
    return UserPageOut(
        users=[AdminUserOut.from_auth0(u) for u in found.users],
        page=page,
        per_page=per_page,
        total=found.total,
    )


@router.get("/{user_id}", responses=error_responses(_NO_USER, *_MANAGEMENT))
async def get_user(user_id: UserId, _: CanRead, users: UsersDep) -> AdminUserOut:
    """One user (needs read:users)."""
    return AdminUserOut.from_auth0(await users.get(user_id))


@router.patch(
    "/{user_id}",
    responses=error_responses(
        _REFUSED_PAYLOAD,
        _NO_USER,
        ManagementConflict("The user already exists."),
        SessionStoreUnavailable,
        *_MANAGEMENT,
    ),
)
async def update_user(
    user_id: UserId, body: AdminPatch, _: CanUpdate, users: UsersDep
) -> AdminUserOut:
    """Change a user, block or unblock (needs update:users)."""
    return AdminUserOut.from_auth0(await users.update(user_id, body))


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(_NO_USER, SessionStoreUnavailable, *_MANAGEMENT),
)
async def delete_user(user_id: UserId, _: CanDelete, users: UsersDep) -> None:
    """Delete a user and end the user's sessions (needs delete:users)."""
    await users.delete(user_id)
