"""``/api/v2/user-blocks``: brute-force protection's blocks, listed and lifted.

A block bars one IP address from logging in as one user after too many failed logins in a row.
``GET`` lists a user's blocks as ``{"blocked_for": [{"identifier", "ip", "connection"}]}``
(scope ``read:users``); ``DELETE`` lifts them all (scope ``update:users``). A user is named by
``user_id`` in the path, or by ``?identifier=`` (email, username or phone number, in any
connection). Blocks an administrator set with ``blocked: true`` are a different thing and stay.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from emulator.management_core import Json, ManagementRoute, RequireScope, found
from emulator.state import Tenant, User

router = APIRouter(route_class=ManagementRoute)

ReadUsers = Annotated[Tenant, Depends(RequireScope("read:users"))]
UpdateUsers = Annotated[Tenant, Depends(RequireScope("update:users"))]


def _blocked_for(tenant: Tenant, users: list[User]) -> Json:
    return {
        "blocked_for": [
            {"identifier": failures.identifier, "ip": ip, "connection": failures.connection}
            for user in users
            for ip, failures in tenant.brute_force_blocks(user.user_id)
        ]
    }


def _user(tenant: Tenant, user_id: str) -> User:
    return found(tenant.users.get(user_id), "The user does not exist.", "inexistent_user")


def _users_by_identifier(tenant: Tenant, identifier: str) -> list[User]:
    wanted = identifier.casefold()
    return [
        user
        for user in tenant.users.values()
        if wanted
        in {
            user.email.casefold(),
            (user.username or "").casefold(),
            (user.phone_number or "").casefold(),
        }
    ]


def _no_content() -> Response:
    # Auth0 documents "User successfully unblocked." without the status; SDK mocks answer 200
    # and accept any 2xx. 204, as the emulator's other deletes, is UNCONFIRMED.
    return Response(status_code=204)


@router.get("/api/v2/user-blocks")
async def list_blocks_by_identifier(
    tenant: ReadUsers, identifier: str, consider_brute_force_enablement: bool = False
) -> Json:
    """The IPs blocked for every user with this identifier.

    Brute-force protection is always on in the emulator, so ``consider_brute_force_enablement``
    changes nothing.
    """
    return _blocked_for(tenant, _users_by_identifier(tenant, identifier))


@router.delete("/api/v2/user-blocks", status_code=204)
async def delete_blocks_by_identifier(tenant: UpdateUsers, identifier: str) -> Response:
    """Lift the blocks of every user with this identifier; none is no error."""
    for user in _users_by_identifier(tenant, identifier):
        tenant.lift_brute_force_blocks(user.user_id)
    return _no_content()


@router.get("/api/v2/user-blocks/{user_id}")
async def list_user_blocks(
    user_id: str, tenant: ReadUsers, consider_brute_force_enablement: bool = False
) -> Json:
    """The IPs blocked for one user; an unknown user is 404."""
    return _blocked_for(tenant, [_user(tenant, user_id)])


@router.delete("/api/v2/user-blocks/{user_id}", status_code=204)
async def delete_user_blocks(user_id: str, tenant: UpdateUsers) -> Response:
    """Lift every block of one user; an unknown user is 404."""
    tenant.lift_brute_force_blocks(_user(tenant, user_id).user_id)
    return _no_content()
