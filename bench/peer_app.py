"""Scenario (d), the peer: ``GET /auth/me`` protected by Auth0's own FastAPI plugin.

``auth0-fastapi-api`` (``Auth0FastAPI(domain, audience).require_auth()``) verifies every
request's token: RS256 signature against the tenant's JWKS (discovery and key set cached by
the plugin), ``iss``, ``aud``, ``exp``. The route answers the same model as the gateway's
``/auth/me`` (:class:`app.routers.auth.PrincipalOut`) from the token's claims.

The one adapter, and why it is honest: the plugin accepts only ``https`` tenants (it refuses an
``http://`` domain and an ``http://`` ``iss``), while the emulator serves plain HTTP on
loopback. So the peer's emulator runs with the issuer ``https://127.0.0.1:<port>/`` (its tokens
carry that ``iss``), and the plugin gets a ``custom_fetch`` (its documented hook for how
discovery and the JWKS are downloaded) that fetches those two documents over plain HTTP from
the same loopback port. Verification of each request is the plugin's own code, unchanged; the
fetch runs once per ``cache_ttl_seconds`` (600 s), never on the measured path.

Settings: ``BENCH_PEER_DOMAIN`` (``127.0.0.1:<port>``) and ``BENCH_PEER_AUDIENCE``; with
``BENCH_STATS_DIR`` each worker announces itself as the gateway's do (:func:`bench.app.instrument`).
"""

# no ``from __future__ import annotations``: FastAPI must see the factory-local ``Claims``
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from fastapi import Depends, FastAPI
from fastapi_plugin.fast_api_client import Auth0FastAPI

from app.routers.auth import PrincipalOut
from bench.app import STATS_DIR_ENV, instrument

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def plain_http_on_loopback(url: str) -> str:
    """``url`` with ``http`` instead of ``https`` when it names a loopback host, else unchanged."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname in _LOOPBACK:
        return urlunsplit(("http", *parts[1:]))
    return url


def create_peer_app() -> FastAPI:
    """The peer app for ``BENCH_PEER_DOMAIN`` and ``BENCH_PEER_AUDIENCE``."""
    http = httpx.AsyncClient(timeout=5)

    async def fetch(url: str) -> httpx.Response:
        response = await http.get(plain_http_on_loopback(url))
        response.raise_for_status()
        return response

    auth0 = Auth0FastAPI(
        domain=os.environ["BENCH_PEER_DOMAIN"],
        audience=os.environ["BENCH_PEER_AUDIENCE"],
        custom_fetch=fetch,
    )
    Claims = Annotated[dict[str, Any], Depends(auth0.require_auth())]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with http:
            yield

    app = FastAPI(title="peer: auth0-fastapi-api", lifespan=lifespan)

    @app.get("/auth/me")
    async def get_me(claims: Claims) -> PrincipalOut:
        """The caller, from the verified token's claims."""
        permissions = claims.get("permissions")
        return PrincipalOut(
            sub=str(claims["sub"]),
            email=claims.get("email"),
            name=claims.get("name"),
            permissions=list(permissions) if isinstance(permissions, list) else [],
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
        )

    stats_dir = os.environ.get(STATS_DIR_ENV)
    if stats_dir:
        instrument(app, Path(stats_dir), lambda: {"pid": os.getpid()})
    return app
