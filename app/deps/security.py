"""The security dependency: ``Authorization: Bearer`` -> :class:`Principal`, and scope checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param

from app.auth.principal import Principal
from app.clients.token_validator import MAX_TOKEN_LENGTH
from app.deps.browser import cookie_principal, session_handle
from app.http.errors import InsufficientScope, Unauthorized
from app.services import Services

# Declares the OAuth2 password flow on the docs page: "Authorize" posts to /auth/login.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/auth/login",
    auto_error=False,
    scheme_name="AuthLogin",
    description="Log in with your username and password; the gateway keeps the refresh token.",
)


async def get_services(request: Request) -> Services:
    """The app's services (built by the lifespan)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def bearer_token(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> str:
    """The raw bearer token of the request, or 401 with an RFC 6750 challenge."""
    return _checked_bearer(request, token)


def _checked_bearer(request: Request, token: str | None) -> str:
    if not token:
        header = request.headers.get("authorization")
        if header is None:
            # RFC 6750 3.1: no error code in the challenge when no credentials were sent
            raise Unauthorized(
                "Authentication required: send 'Authorization: Bearer <token>'.",
                code="invalid_request",
                headers={"WWW-Authenticate": 'Bearer realm="venue-gateway"'},
            )
        raise Unauthorized(
            "The Authorization header must be 'Bearer <token>'.", code="invalid_request"
        )
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("The access token is malformed.")
    return token


BearerToken = Annotated[str, Depends(bearer_token)]


async def caller_token(request: Request) -> str:
    """The access token the request acts with: the bearer token, or in cookie mode the token
    the session cookie stands for (refreshed already by :data:`CurrentPrincipal`, which a
    route using this also depends on)."""
    header = request.headers.get("authorization")
    if header is None:
        services: Services = request.app.state.services
        handle = session_handle(request, services)
        if handle is not None:
            return await services.browser.access_token(handle)
    scheme, param = get_authorization_scheme_param(header)
    return _checked_bearer(request, param if scheme.lower() == "bearer" else None)


CallerToken = Annotated[str, Depends(caller_token)]


class PrincipalScheme(SecurityBase):
    """``oauth2_scheme`` as the docs page shows it, resolving the caller in the same call.

    FastAPI resolves every dependency layer on every request, about 8 µs each against some
    75 µs for a whole cached request (docs/performance.md): ``CurrentPrincipal`` is this one
    layer, where ``BearerToken`` and ``ServicesDep`` underneath would make it three.
    """

    def __init__(self, declared: OAuth2PasswordBearer) -> None:
        self.model = declared.model
        self.scheme_name = declared.scheme_name

    async def __call__(self, request: Request, response: Response) -> Principal:
        """The caller; an in-process cache hit returns without awaiting anything.

        Without an ``Authorization`` header, the session cookie of cookie mode is taken
        (:mod:`app.deps.browser`); with both, the header wins. The caller's ``sub`` is left in
        ``request.state.sub`` for the access log.
        """
        header = request.headers.get("authorization")
        services: Services = request.app.state.services
        if header is None:
            handle = session_handle(request, services)
            if handle is not None:
                browser = await cookie_principal(request, services, handle)
                # an answer to a cookie is the user's own: no shared cache may keep it
                response.headers["Cache-Control"] = "private, no-store"
                request.state.sub = browser.sub
                return browser
        scheme, param = get_authorization_scheme_param(header)
        token = _checked_bearer(request, param if scheme.lower() == "bearer" else None)
        principal = services.resolver.cached_nowait(token)
        if principal is None:
            principal = await services.resolver.resolve(token)
        request.state.sub = principal.sub
        return principal


current_principal = PrincipalScheme(oauth2_scheme)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


class RequireScopes:
    """A dependency that lets a request through only with every named permission."""

    def __init__(self, *permissions: str) -> None:
        self.permissions = permissions

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        """403 ``insufficient_scope`` unless the principal holds every permission."""
        if not principal.has(*self.permissions):
            raise InsufficientScope(self.permissions)
        return principal
