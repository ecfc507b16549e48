"""``POST /tokens/introspect``: RFC 7662 token introspection for internal services."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.security import HTTPBasic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from app.cache.rate_limit import FixedWindowLimiter
from app.deps.security import ServicesDep
from app.http.body_limit import BodyLimitRoute
from app.http.client_ip import client_ip
from app.http.errors import RateLimited, Unauthorized, UpstreamUnavailable
from app.http.responses import error_responses
from app.services import Services

log = logging.getLogger(__name__)

router = APIRouter(prefix="/tokens", tags=["tokens"], route_class=BodyLimitRoute)


class IntrospectionRequest(BaseModel):
    """RFC 7662 section 2.1: the token, and optionally what kind it is."""

    token: str = Field(min_length=1, max_length=4096, description="The token to check.")
    token_type_hint: str | SkipJsonSchema[None] = Field(
        default=None, max_length=64, examples=["access_token"]
    )


class IntrospectionResponse(BaseModel):
    """RFC 7662 section 2.2; only ``active`` when the token is not active."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "active": True,
                    "sub": "auth0|demo-viewer",
                    "scope": "openid profile email",
                    "exp": 1767225600,
                    "client_id": "local-gateway",
                    "permissions": ["read:venues"],
                    "email": "viewer@venues.local",
                    "token_type": "Bearer",
                },
                {"active": False},
            ]
        }
    )

    active: bool
    sub: str | None = None
    scope: str | None = None
    exp: int | None = None
    client_id: str | None = None
    permissions: list[str] | None = None
    email: str | None = None
    token_type: str | None = None


_CHALLENGE = {"WWW-Authenticate": 'Basic realm="token-introspection"'}


class _DocumentedBasic(HTTPBasic):
    """HTTP Basic in the OpenAPI document only. :class:`IntrospectionGuard` reads the header
    itself: FastAPI's own check would answer a malformed header 401 ``invalid_token`` before
    the guard could count the failure against the throttle."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


_basic = _DocumentedBasic(
    scheme_name="IntrospectionClient",
    description="An internal service's client id and secret (GATEWAY_INTROSPECTION__CLIENTS).",
    realm="token-introspection",
    auto_error=False,
)


def _basic_credentials(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unauthorized(
            "Introspection needs HTTP Basic credentials.", code="invalid_client", headers=_CHALLENGE
        )
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized(
            "Malformed Basic credentials.", code="invalid_client", headers=_CHALLENGE
        ) from exc
    return client_id, secret


def _secret_matches(clients: dict[str, str], client_id: str, secret: str) -> bool:
    expected = clients.get(client_id)
    # compare against something even for unknown clients, so timing says nothing
    return hmac.compare_digest(secret.encode(), (expected or "\0" * 32).encode()) and bool(expected)


class IntrospectionGuard:
    """Throttles Basic-auth guessing: failures per client id and per client IP, per minute.

    While either count is at its limit every attempt, right or wrong, is 429 with
    ``Retry-After``, so a guesser learns nothing until the window ends.
    """

    def __init__(self, services: Services) -> None:
        """Counters in the app's shared cache, limits from ``GATEWAY_INTROSPECTION__*``."""
        settings = services.settings
        limits = settings.introspection
        self._clients = {k: v.get_secret_value() for k, v in limits.clients.items()}
        self._trusted_proxies = settings.trusted_proxies
        ns = settings.cache_namespace
        self._per_client = FixedWindowLimiter(
            services.cache,
            ns,
            "introspect-fail-client",
            limit=limits.failures_per_client_per_minute,
            window_s=60,
        )
        self._per_ip = FixedWindowLimiter(
            services.cache,
            ns,
            "introspect-fail-ip",
            limit=limits.failures_per_ip_per_minute,
            window_s=60,
        )

    async def check(self, request: Request) -> None:
        """Pass a caller with valid credentials; 401 or 429 otherwise."""
        client_id, secret = _basic_credentials(request)
        ip = client_ip(request, self._trusted_proxies) or "unknown"
        for limiter, subject in ((self._per_client, client_id), (self._per_ip, ip)):
            standing = await limiter.peek(subject)
            if not standing.allowed:
                raise _throttled(standing.retry_after_s)
        if _secret_matches(self._clients, client_id, secret):
            return
        client, address = await self._per_client.hit(client_id), await self._per_ip.hit(ip)
        if not (client.allowed and address.allowed):
            log.warning("introspection: too many failed authentications; throttled for a minute")
        raise Unauthorized(
            "Unknown client or wrong secret.", code="invalid_client", headers=_CHALLENGE
        )


def _throttled(retry_after_s: int) -> RateLimited:
    return RateLimited(
        "Too many failed authentications; try again later.", retry_after=retry_after_s
    )


def get_guard(request: Request) -> IntrospectionGuard:
    """The app's guard, built on first use."""
    guard: IntrospectionGuard | None = getattr(request.app.state, "introspection_guard", None)
    if guard is None:
        guard = IntrospectionGuard(request.app.state.services)
        request.app.state.introspection_guard = guard
    return guard


@router.post(
    "/introspect",
    response_model_exclude_none=True,
    dependencies=[Depends(_basic)],
    responses=error_responses(
        Unauthorized(
            "Introspection needs HTTP Basic credentials.", code="invalid_client", headers=_CHALLENGE
        ),
        Unauthorized("Malformed Basic credentials.", code="invalid_client", headers=_CHALLENGE),
        Unauthorized("Unknown client or wrong secret.", code="invalid_client", headers=_CHALLENGE),
        _throttled(60),
        UpstreamUnavailable,
    ),
)
async def introspect_token(
    request: Request,
    form: Annotated[IntrospectionRequest, Form()],
    services: ServicesDep,
) -> IntrospectionResponse:
    """Whether a token is active, and whose it is (internal services, HTTP Basic)."""
    await get_guard(request).check(request)
    try:
        principal = await services.resolver.resolve(form.token)
    except Unauthorized:
        return IntrospectionResponse(active=False)
    return IntrospectionResponse(
        active=True,
        sub=principal.sub,
        scope=" ".join(principal.scopes) or None,
        exp=principal.expires_at,
        client_id=principal.client_id,
        permissions=list(principal.permissions),
        email=principal.email,
        token_type="Bearer",  # noqa: S106 - the RFC 7662 token type, not a secret
    )
