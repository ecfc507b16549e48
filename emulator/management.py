"""The emulated Auth0 Management API v2 under ``/api/v2/`` (docs/emulator.md, "Management API").

The routes live in ``management_users``, ``management_clients``, ``management_grants``,
``management_apis`` and ``management_blocks``; the error shape, bearer-token and scope checks,
rate limit, body validation and paging they share live in ``management_core``.
"""

from __future__ import annotations

from fastapi import APIRouter

from emulator import (
    management_apis,
    management_blocks,
    management_clients,
    management_grants,
    management_users,
)
from emulator.management_core import ManagementRoute, not_found

router = APIRouter(route_class=ManagementRoute)
router.include_router(management_users.router)
router.include_router(management_clients.router)
router.include_router(management_grants.router)
router.include_router(management_apis.router)
router.include_router(management_blocks.router)


@router.api_route(
    "/api/v2/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def unknown_management_route(path: str) -> None:
    """Anything else under ``/api/v2/`` is a Management-shaped 404, not FastAPI's."""
    raise not_found("Not Found", "not_found")
