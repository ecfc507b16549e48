"""The application factory: ``create_app(settings)``; serve with ``uvicorn --factory``."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from app.db.migrations import prepare_schema
from app.http.cors import install_cors
from app.http.docs_page import install_docs
from app.http.errors import install_error_handlers
from app.http.openapi import METADATA
from app.observability.logging import flush_log_writers, register_settings_secrets
from app.observability.metrics import Metrics
from app.observability.middleware import ObservabilityMiddleware
from app.observability.tracing import Tracing
from app.routers import auth, browser_session, health, tokens, users, venues
from app.routers import metrics as metrics_routes
from app.services import build_services, start_background_work
from settings import Settings, load_settings

log = logging.getLogger("app")


def create_app(settings: Settings | None = None, *, tracing: Tracing | None = None) -> FastAPI:
    """Build the gateway for ``settings`` (read from the environment when omitted).

    ``tracing``: where spans go; by default as the ``OTEL_*`` variables say (off unless an
    OTLP endpoint is set).
    """
    settings = settings or load_settings()
    tracing = tracing or Tracing.from_environment()
    register_settings_secrets(settings)
    metrics = Metrics.from_environment(cache_backend=settings.cache.backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.services = await build_services(
                settings, stack, metrics=metrics, tracing=tracing
            )
            # local (make dev, tests) migrates itself; elsewhere `gateway db upgrade` does
            await prepare_schema(app.state.services.database.engine, migrate=settings.is_local)
            await start_background_work(app.state.services, stack)
            log.info("gateway ready: env=%s tenant=%s", settings.env.value, settings.auth0.base_url)
            # What is alive now (modules, schemas, services) lives as long as the app. Frozen,
            # the collector stops walking it in every full collection, each an ~80 ms pause of
            # every request in flight otherwise (docs/performance.md); thawed when the app stops.
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()
                flush_log_writers()  # the last access lines, before the process may be killed

    docs = bool(settings.docs_enabled)
    app = FastAPI(
        title="venue-gateway",
        version="0.1.0",
        description=(
            "The venue API behind Auth0's password login. Press **Authorize**, log in with a "
            "username and password, and every protected route works from this page."
        ),
        lifespan=lifespan,
        docs_url=None,  # app.http.docs_page serves the page with its assets, no CDN
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_init_oauth={"usePkceWithAuthorizationCodeGrant": False},
        **METADATA,  # operation ids, servers, license, contact, tags
        # FastAPI's own telemetry stays off: with tracing on, the maintained instrumentation
        # (app.observability.tracing) makes the server span; both would make two per request
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    install_cors(app, settings.cors_origins)
    # outermost: ids, logs and counts every answer, CORS preflights included
    app.add_middleware(
        ObservabilityMiddleware, metrics=metrics, trusted_proxies=settings.trusted_proxies
    )
    if tracing is not None:
        # outermost of all: the span is current in ObservabilityMiddleware's access line
        tracing.instrument_app(app)
    app.include_router(auth.router)
    app.include_router(browser_session.router)
    app.include_router(tokens.router)
    app.include_router(health.router)
    if settings.metrics_enabled:
        app.include_router(metrics_routes.router)
    app.include_router(venues.router)
    app.include_router(users.router)
    if docs:
        # after the API: routes are tried in order, and every API request would try these first
        install_docs(app)
    return app
