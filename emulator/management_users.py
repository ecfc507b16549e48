"""``/api/v2/users``, ``/api/v2/users-by-email`` and a user's permissions and roles."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from emulator.management_core import (
    Json,
    ManagementError,
    ManagementRoute,
    Page,
    Paged,
    Paging,
    PerPage,
    Prop,
    RequireScope,
    Schema,
    conflict,
    default_page_size,
    found,
    invalid_body,
    invalid_query,
    merge_one_level,
    paging_query,
    read_body,
    select_fields,
    tenant_of,
    without_none,
)
from emulator.management_search import compile_query
from emulator.state import Connection, Tenant, User, hash_password, iso_utc

router = APIRouter(route_class=ManagementRoute)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = Prop("string", min_length=1, max_length=300)
_SHORT_NAME = Prop("string", min_length=1, max_length=150)
_NULLABLE_NAME = Prop("string", nullable=True, max_length=300)
_NULLABLE_SHORT_NAME = Prop("string", nullable=True, max_length=150)

CREATE_USER = Schema(
    props={
        "connection": Prop("string", min_length=1),
        "email": Prop("string"),
        "phone_number": Prop("string"),
        "user_metadata": Prop("object"),
        "app_metadata": Prop("object"),
        "blocked": Prop("boolean"),
        "email_verified": Prop("boolean"),
        "phone_verified": Prop("boolean"),
        "given_name": _SHORT_NAME,
        "family_name": _SHORT_NAME,
        "name": _NAME,
        "nickname": _NAME,
        "picture": Prop("string"),
        "user_id": Prop("string", min_length=1),
        "password": Prop("string", min_length=1),
        "verify_email": Prop("boolean"),
        "username": Prop("string", min_length=1, max_length=128),
    },
    required=("connection",),
)
UPDATE_USER = Schema(
    props={
        "email": Prop("string"),
        "email_verified": Prop("boolean"),
        "blocked": Prop("boolean"),
        "given_name": _NULLABLE_SHORT_NAME,
        "family_name": _NULLABLE_SHORT_NAME,
        "name": _NULLABLE_NAME,
        "nickname": _NULLABLE_NAME,
        "picture": Prop("string", nullable=True),
        "phone_number": Prop("string", nullable=True),
        "phone_verified": Prop("boolean"),
        "username": Prop("string", nullable=True, min_length=1, max_length=128),
        "password": Prop("string", min_length=1),
        "user_metadata": Prop("object", nullable=True),
        "app_metadata": Prop("object", nullable=True),
        "verify_email": Prop("boolean"),
        "verify_phone_number": Prop("boolean"),
        "verify_password": Prop("boolean"),
        "connection": Prop("string", min_length=1),
        "client_id": Prop("string"),
    },
)
# Root fields PATCH may set to null, which unsets them.
_NULLABLE_FIELDS = ("given_name", "family_name", "name", "nickname", "picture", "phone_number")


def _paged_too_far(reachable: int) -> str:
    """The 400 of a page that starts past the users a list can reach.

    The message pasted in auth0/node-auth0#1246 (its tail, the docs link, is cut off there and
    completed here), with the tenant's limit in place of Auth0's 1000; the errorCode is
    UNCONFIRMED.
    """
    return (
        f"You can only page through the first {reachable} records. "
        "See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation"
    )


def _user_paging(
    request: Request, page: Page = None, per_page: PerPage = None, include_totals: bool = False
) -> Paging:
    """Dependency: the users list pages by 50 unless asked otherwise and says its ``length``."""
    paging = paging_query(request, page, per_page, include_totals)
    limits = tenant_of(request).list_limits
    return replace(paging, default_per_page=default_page_size(limits), length=True)


UserPaged = Annotated[Paging, Depends(_user_paging)]


def user_json(user: User) -> Json:
    """The Management API representation of a user (never the password hash)."""
    provider, _, bare_id = user.user_id.partition("|")
    identity = {
        "connection": user.connection,
        "user_id": bare_id or user.user_id,
        "provider": provider if bare_id else "auth0",
        "isSocial": False,
    }
    return without_none(
        {
            "user_id": user.user_id,
            "email": user.email,
            "email_verified": user.email_verified,
            "username": user.username,
            "phone_number": user.phone_number,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "name": user.name,
            "nickname": user.nickname,
            "picture": user.picture,
            "created_at": iso_utc(user.created_at),
            "updated_at": iso_utc(user.updated_at),
            "identities": [identity],
            "user_metadata": dict(user.user_metadata),
            "app_metadata": dict(user.app_metadata),
            "last_login": iso_utc(user.last_login) if user.last_login is not None else None,
            "logins_count": user.logins_count,
            "blocked": user.blocked,
        }
    )


def _find_user(tenant: Tenant, user_id: str) -> User:
    return found(tenant.users.get(user_id), "The user does not exist.", "inexistent_user")


def _connection(tenant: Tenant, name: str) -> Connection:
    connection = tenant.connections.get(name)
    if connection is None:
        raise ManagementError(400, "The connection does not exist.", "inexistent_connection")
    return connection


def _check_email(email: str) -> str:
    if not _EMAIL.match(email):
        raise invalid_body(f"Object didn't pass validation for format email: {email}", "email")
    # Auth0 stores database users' emails in lower case.
    return email.lower()


def _check_password(connection: Connection | None, password: str) -> None:
    if connection is not None and not connection.accepts_password(password):
        # The live answer carries no errorCode (community.auth0.com thread 79241).
        raise ManagementError(400, "PasswordStrengthError: Password is too weak")


def _check_unique(tenant: Tenant, connection: str, login: str, user: User | None = None) -> None:
    existing = tenant.user_by_email(connection, login)
    if existing is not None and existing is not user:
        raise conflict("The user already exists.", "auth0_idp_error")


@router.post("/api/v2/users", status_code=201)
async def create_user(
    request: Request, tenant: Annotated[Tenant, Depends(RequireScope("create:users"))]
) -> Json:
    """Create a user in a connection."""
    body = await read_body(request, CREATE_USER)
    connection = _connection(tenant, body["connection"])
    if "email" not in body:
        raise invalid_body("Missing required property: email")
    email = _check_email(body["email"])
    password = body.get("password")
    if password is None:
        if connection.strategy == "auth0":
            raise invalid_body("Missing required property: password")
        password = secrets.token_urlsafe(32)  # passwordless users have no usable password
    if connection.requires_username and "username" not in body:
        raise invalid_body("Missing required property: username")
    _check_unique(tenant, connection.name, email)
    if "username" in body:
        _check_unique(tenant, connection.name, body["username"])
    user_id = None
    if "user_id" in body:
        given = body["user_id"]
        user_id = given if given.startswith("auth0|") else f"auth0|{given}"
        if user_id in tenant.users:
            raise conflict("The user already exists.", "auth0_idp_error")
    _check_password(connection, password)
    fields = {
        name: body[name]
        for name in (
            "email_verified",
            "username",
            "name",
            "nickname",
            "given_name",
            "family_name",
            "picture",
            "phone_number",
            "blocked",
            "user_metadata",
            "app_metadata",
        )
        if name in body
    }
    user = tenant.add_user(
        email=email, password=password, connection=connection.name, user_id=user_id, **fields
    )
    return user_json(user)


@router.get("/api/v2/users")
async def list_users(
    tenant: Annotated[Tenant, Depends(RequireScope("read:users"))],
    paging: UserPaged,
    q: str | None = None,
    search_engine: str | None = None,
    connection: str | None = None,
    sort: str | None = None,
    fields: str | None = None,
    include_fields: bool = True,
) -> list[Json] | Json:
    """List or search users (``q`` with ``search_engine=v3``), 50 a page at most."""
    if search_engine not in {None, "v3"}:
        raise invalid_query(f'No enum match for: "{search_engine}"', "search_engine")
    users = [user_json(user) for user in tenant.users.values()]
    if connection:
        users = [u for u in users if u["identities"][0]["connection"] == connection]
    if q:
        matches = compile_query(q)
        users = [u for u in users if matches(u)]
    if sort:
        name, _, direction = sort.partition(":")
        users.sort(key=lambda u: str(u.get(name, "")), reverse=direction == "-1")
    per_page = paging.page_size
    reachable = tenant.list_limits.users_listed_max
    if (paging.page or 0) * per_page >= reachable:
        raise ManagementError(400, _paged_too_far(reachable), "invalid_paging")
    # Auth0 lets a list or search reach its first 1,000 users only (users_listed_max; docs
    # manage-users/user-search/view-search-results-by-page, "Limitation").
    return paging.answer(users[:reachable], "users", fields, include_fields)


@router.get("/api/v2/users-by-email")
async def list_users_by_email(
    tenant: Annotated[Tenant, Depends(RequireScope("read:users"))],
    email: str,
    fields: str | None = None,
    include_fields: bool = True,
) -> list[Json]:
    """Every user with exactly this email, in any connection.

    Auth0's match is exact and case-sensitive (docs
    ``manage-users/user-search/retrieve-users-with-get-users-by-email-endpoint``); database
    users' emails are stored in lower case, so a mixed-case address finds none of them.
    """
    return [
        select_fields(user_json(user), fields, include_fields)
        for user in tenant.users.values()
        if user.email == email
    ]


@router.get("/api/v2/users/{user_id}")
async def get_user(
    user_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("read:users"))],
    fields: str | None = None,
    include_fields: bool = True,
) -> Json:
    """One user; the id's ``|`` arrives URL-encoded as ``%7C``."""
    user = _find_user(tenant, user_id)
    return select_fields(user_json(user), fields, include_fields)


@router.patch("/api/v2/users/{user_id}")
async def update_user(
    request: Request,
    user_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("update:users"))],
) -> Json:
    """Update root fields; metadata merges one level deep and ``null`` unsets."""
    user = _find_user(tenant, user_id)
    body = await read_body(request, UPDATE_USER)
    if "connection" in body:
        _connection(tenant, body["connection"])
    connection = tenant.connections.get(user.connection)
    if "email" in body:
        email = _check_email(body["email"])
        _check_unique(tenant, user.connection, email, user)
        if email != user.email and "email_verified" not in body:
            user.email_verified = False  # a new address is unverified unless the caller says so
        user.email = email
    if body.get("username") is not None:
        _check_unique(tenant, user.connection, body["username"], user)
    if "password" in body:
        _check_password(connection, body["password"])
        user.password_hash = hash_password(body["password"])
        # Auth0: a password change lifts the user's brute-force blocks.
        tenant.lift_brute_force_blocks(user.user_id)
    for name in (*_NULLABLE_FIELDS, "username", "email_verified", "blocked"):
        if name in body:
            setattr(user, name, body[name])
    for name in ("user_metadata", "app_metadata"):
        if name in body:
            changes = body[name]
            # Auth0: patching the metadata with an empty object (or null) removes it all.
            merged = merge_one_level(getattr(user, name), changes) if changes else {}
            setattr(user, name, merged)
    user.updated_at = tenant.now()
    return user_json(user)


@router.delete("/api/v2/users/{user_id}", status_code=204)
async def delete_user(
    user_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("delete:users"))],
) -> Response:
    """Delete a user; an unknown id is a 204 too (Auth0's spec lists no 404 here).

    Their refresh tokens stay in the tenant: the Authentication API refuses them because
    the user is gone.
    """
    tenant.users.pop(user_id, None)
    return Response(status_code=204)


@router.get("/api/v2/users/{user_id}/permissions")
async def list_user_permissions(
    user_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("read:users"))],
    paging: Paged,
) -> list[Json] | Json:
    """The permissions assigned to a user, across APIs."""
    user = _find_user(tenant, user_id)
    permissions = []
    for identifier, name in user.permissions:
        api = tenant.resource_servers.get(identifier)
        descriptions = {s["value"]: s.get("description", "") for s in api.scopes} if api else {}
        permissions.append(
            {
                "permission_name": name,
                "description": descriptions.get(name, ""),
                "resource_server_identifier": identifier,
                "resource_server_name": api.name if api else identifier,
            }
        )
    return paging.answer(permissions, "permissions")


@router.get("/api/v2/users/{user_id}/roles")
async def list_user_roles(
    user_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("read:roles", "read:users"))],
    paging: Paged,
) -> list[Json] | Json:
    """The roles assigned to a user (``{id, name, description}``)."""
    user = _find_user(tenant, user_id)
    roles = [
        {"id": r.get("id", ""), "name": r.get("name", ""), "description": r.get("description", "")}
        for r in user.roles
    ]
    return paging.answer(roles, "roles")
