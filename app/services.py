"""The long-lived parts of a running gateway, built once per app by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx

from app.auth.browser import BrowserSessions
from app.auth.cipher import SessionCipher
from app.auth.flow import AuthFlow
from app.auth.principal import Principal
from app.auth.resolver import PrincipalResolver
from app.auth.revocations import RevocationList
from app.auth.sessions import SessionStore
from app.cache import Cache, LocalTier, build_cache
from app.cache.sealed import EntrySealer
from app.clients.auth0 import Auth0AuthClient
from app.clients.jwks import JwksCache
from app.clients.management import ManagementClient, build_management_client
from app.clients.token_validator import TokenValidator
from app.db.engine import Database, open_database
from app.http.errors import SessionStoreUnavailable
from app.observability.metrics import Metrics
from app.observability.tracing import Tracing
from settings import Settings

log = logging.getLogger("app.services")


@dataclass(frozen=True)
class Services:
    """What routes and dependencies use; one instance per app, on ``app.state.services``."""

    settings: Settings
    http: httpx.AsyncClient
    cache: Cache
    auth0: Auth0AuthClient
    jwks: JwksCache
    validator: TokenValidator
    store: SessionStore
    revocations: RevocationList
    resolver: PrincipalResolver
    flow: AuthFlow
    database: Database
    management: ManagementClient
    browser: BrowserSessions


async def build_services(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> Services:
    """Build every service; ``stack`` closes them when the app stops; ``metrics`` observe them;
    ``tracing`` (when on) traces the calls they make.

    Nothing runs in the background yet: :func:`start_background_work` starts that once the
    database schema is in place.
    """
    metrics = metrics or Metrics.from_environment(cache_backend=settings.cache.backend)
    http = await stack.enter_async_context(
        httpx.AsyncClient(
            base_url=settings.auth0.base_url,
            timeout=settings.auth0.timeout_s,
            verify=settings.auth0.tls_verify(),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": "venue-gateway"},
        )
    )
    cache = build_cache(settings.cache, observer=metrics)
    stack.push_async_callback(cache.close)
    # the request path's cache, with a span per operation when tracing is on; services.cache
    # stays the store itself (readiness looks at memcached's circuit breaker through it)
    traced_cache = cache
    if tracing is not None:
        tracing.instrument_http(http)
        traced_cache = tracing.traced_cache(cache, settings.cache.backend)
        stack.callback(tracing.flush)
    auth0 = Auth0AuthClient(http, settings.auth0, on_call=metrics.observe_auth0_call)
    jwks = JwksCache(
        auth0.fetch_jwks,
        cache_s=settings.auth0.jwks_cache_s,
        min_refetch_interval_s=settings.auth0.jwks_min_refetch_interval_s,
    )
    validator = TokenValidator(settings.auth0, jwks)
    cipher = SessionCipher.from_settings(settings.session, allow_ephemeral=settings.is_local)
    if cipher.is_ephemeral:
        log.warning(
            "GATEWAY_SESSION__KEYS is empty: using an ephemeral session key; sessions end "
            "when the gateway restarts (allowed in local only)"
        )
    namespace = settings.cache_namespace
    database = open_database(settings.database, stack)
    if tracing is not None:
        tracing.instrument_engine(database.engine)
    store = SessionStore(
        database.engine,
        cipher,
        lifetime_s=settings.session.lifetime_s,
        timeout_s=settings.database.timeout_s,
        notify_channel=notify_channel(namespace),
        leeway_s=settings.auth0.leeway_s,
    )
    revocations = RevocationList(store, sync_interval_s=settings.session.revocation_sync_s)
    resolver = PrincipalResolver(
        settings=settings.auth0,
        namespace=namespace,
        cache=traced_cache,
        local=LocalTier[Principal].from_settings(settings.cache),
        validator=validator,
        auth0=auth0,
        store=store,
        revocations=revocations,
        sealer=EntrySealer(
            cipher.derive_keys("cache entry mac"),
            on_rejected=metrics.cache_entries_rejected.inc,
        ),
        metrics=metrics,
        tracer=tracing.tracer if tracing is not None else None,
    )
    flow = AuthFlow(
        auth0=auth0,
        validator=validator,
        store=store,
        resolver=resolver,
        grace_s=settings.session.refresh_grace_s,
        metrics=metrics,
        upstream_timeout_s=settings.auth0.timeout_s,
        store_timeout_s=settings.database.timeout_s,
        refresh_after_expiry_s=settings.session.refresh_after_expiry_s,
        tracer=tracing.tracer if tracing is not None else None,
    )
    stack.push_async_callback(flow.close)
    return Services(
        settings,
        http,
        cache,
        auth0,
        jwks,
        validator,
        store,
        revocations,
        resolver,
        flow,
        database=database,
        management=build_management_client(settings, http, auth0, traced_cache, cipher),
        browser=BrowserSessions(
            engine=database.engine,
            cipher=cipher,
            store=store,
            flow=flow,
            resolver=resolver,
            refresh_margin_s=settings.browser.refresh_margin_s,
            local_ttl_s=settings.cache.local_ttl_s,
            local_max_entries=settings.cache.local_max_entries,
            timeout_s=settings.database.timeout_s,
        ),
    )


async def start_background_work(services: Services, stack: AsyncExitStack) -> None:
    """Load the revocations in force and keep them in step; prune expired rows periodically.

    ``stack`` stops both when the app stops.
    """
    settings = services.settings
    postgres = services.database.engine.dialect.name == "postgresql"
    await services.revocations.start(stack, listen_url=settings.database.url if postgres else None)
    interval = settings.session.prune_interval_s
    if interval:
        task = asyncio.create_task(_prune_every(services.store, interval), name="session-prune")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop)


def notify_channel(namespace: str) -> str:
    """The PostgreSQL ``NOTIFY`` channel of a namespace's revocations (an identifier)."""
    return f"vg_revocations_{hashlib.sha256(namespace.encode()).hexdigest()[:16]}"


async def _prune_every(store: SessionStore, interval_s: int) -> None:
    # spread over the interval, so workers and replicas started together do not prune together
    await asyncio.sleep(random.uniform(0, interval_s))  # noqa: S311 - timing, not security
    while True:
        try:
            pruned = await store.prune()
            if pruned.sessions or pruned.revocations:
                log.info(
                    "pruned %d session(s), %d token record(s), %d revocation(s)",
                    pruned.sessions,
                    pruned.tokens,
                    pruned.revocations,
                )
        except SessionStoreUnavailable:
            pass  # logged by the store; the next round tries again
        await asyncio.sleep(interval_s)
