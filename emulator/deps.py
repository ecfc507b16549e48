"""FastAPI dependencies shared by the emulator's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from emulator.state import Tenant


async def get_tenant(request: Request) -> Tenant:
    """The tenant this emulator app serves (set by :func:`emulator.app.create_emulator_app`)."""
    tenant: Tenant = request.app.state.tenant
    return tenant


TenantDep = Annotated[Tenant, Depends(get_tenant)]
