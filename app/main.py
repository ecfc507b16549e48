"""The application factory: ``create_app(settings)``; serve with ``uvicorn --factory``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from app.errors import install_error_handlers
from app.routers import auth, health, tokens
from app.services import build_services
from settings import Settings, load_settings

log = logging.getLogger("app")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway for ``settings`` (read from the environment when omitted)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.services = await build_services(settings, stack)
            log.info("gateway ready: env=%s tenant=%s", settings.env.value, settings.auth0.base_url)
            yield

    docs = bool(settings.docs_enabled)
    app = FastAPI(
        title="venue-gateway",
        version="0.1.0",
        description=(
            "The venue API behind Auth0's password login. Press **Authorize**, log in with a "
            "username and password, and every protected route works from this page."
        ),
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_init_oauth={"usePkceWithAuthorizationCodeGrant": False},
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(tokens.router)
    app.include_router(health.router)
    return app
