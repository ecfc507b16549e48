"""The long-lived parts of a running gateway, built once per app by the lifespan."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx

from app.auth.flow import AuthFlow
from app.auth.principal import Principal
from app.auth.resolver import PrincipalResolver
from app.auth.session_index import UserSessionIndex
from app.auth.sessions import SessionCipher, SessionStore
from app.cache import Cache, LocalTier, build_cache
from app.clients.auth0 import Auth0AuthClient
from app.clients.jwks import JwksCache
from app.clients.management import ManagementClient, build_management_client
from app.clients.token_validator import TokenValidator
from app.db.engine import Database, open_database
from app.observability.metrics import Metrics
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
    sessions: SessionStore
    resolver: PrincipalResolver
    flow: AuthFlow
    database: Database
    management: ManagementClient
    session_index: UserSessionIndex


async def build_services(
    settings: Settings, stack: AsyncExitStack, *, metrics: Metrics | None = None
) -> Services:
    """Build every service; ``stack`` closes them when the app stops; ``metrics`` observe them."""
    metrics = metrics or Metrics.from_environment(cache_url=settings.cache.url)
    http = await stack.enter_async_context(
        httpx.AsyncClient(
            base_url=settings.auth0.base_url,
            timeout=settings.auth0.timeout_s,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": "venue-gateway"},
        )
    )
    cache = build_cache(settings.cache)
    stack.push_async_callback(cache.close)
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
    sessions = SessionStore(
        cache,
        namespace,
        cipher,
        lifetime_s=settings.session.lifetime_s,
        grace_s=settings.session.refresh_grace_s,
    )
    resolver = PrincipalResolver(
        settings=settings.auth0,
        namespace=namespace,
        cache=cache,
        local=LocalTier[Principal].from_settings(settings.cache),
        validator=validator,
        auth0=auth0,
        sessions=sessions,
        metrics=metrics,
    )
    session_index = UserSessionIndex(cache, namespace, cipher)
    flow = AuthFlow(
        auth0=auth0,
        validator=validator,
        sessions=sessions,
        resolver=resolver,
        cache=cache,
        namespace=namespace,
        session_lifetime_s=settings.session.lifetime_s,
        grace_s=settings.session.refresh_grace_s,
        session_index=session_index,
        metrics=metrics,
        upstream_timeout_s=settings.auth0.timeout_s,
    )
    database = open_database(settings.database, stack)
    return Services(
        settings,
        http,
        cache,
        auth0,
        jwks,
        validator,
        sessions,
        resolver,
        flow,
        database=database,
        management=build_management_client(settings, http, auth0, cache, cipher),
        session_index=session_index,
    )
