"""The emulator's ASGI application: one tenant served over HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from emulator import authentication, control, management
from emulator.middleware import EmulatorMiddleware
from emulator.state import Tenant


def create_emulator_app(tenant: Tenant, *, allow_remote_control: bool = False) -> FastAPI:
    """Serve ``tenant``'s Authentication API, Management API and ``/__emulator/`` controls.

    The controls answer loopback clients only, unless ``allow_remote_control``.
    """
    app = FastAPI(title="Auth0 emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tenant = tenant
    app.include_router(authentication.router)
    app.include_router(management.router)
    app.include_router(control.router)
    app.add_middleware(EmulatorMiddleware, tenant=tenant, allow_remote_control=allow_remote_control)
    return app
