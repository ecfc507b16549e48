"""``/auth/session``: cookie mode, log a browser in and out; no token ever reaches the page."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from app.auth.browser import session_ended
from app.deps.browser import session_handle
from app.deps.security import ServicesDep
from app.http.body_limit import BodyLimitRoute
from app.http.client_ip import client_ip
from app.http.cookies import clear_session_cookie, set_session_cookie
from app.http.csrf import CSRF_REFUSALS, check_csrf
from app.http.errors import GatewayError, SessionStoreUnavailable
from app.http.openapi import KEYS_DOWN
from app.http.responses import error_responses
from app.routers.auth import LOGIN_ERRORS, LoginRequest, PrincipalOut, login_request

router = APIRouter(prefix="/auth", tags=["auth"], route_class=BodyLimitRoute)

_CSRF_HEADER = {
    "name": "X-Requested-With",
    "in": "header",
    "required": True,
    "description": "Any value: the CSRF check (with an allowed Origin).",
    "schema": {"type": "string", "example": "fetch"},
}
_SESSION_LOGIN = {
    "parameters": [_CSRF_HEADER],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": LoginRequest.model_json_schema()}},
    },
}


@router.post(
    "/session",
    openapi_extra=_SESSION_LOGIN,
    # session_ended: a logout of the same user's identical token won the race (rare)
    responses=error_responses(*LOGIN_ERRORS, session_ended(), *CSRF_REFUSALS),
)
async def create_session(
    request: Request,
    credentials: Annotated[LoginRequest, Depends(login_request)],
    services: ServicesDep,
    response: Response,
) -> PrincipalOut:
    """Log a browser in: a session cookie (HttpOnly) and the profile, never a token."""
    settings = services.settings
    check_csrf(request, settings.cors_origins, settings.trusted_proxies)
    previous = session_handle(request, services)
    ip = client_ip(request, settings.trusted_proxies)
    login = await services.browser.login(credentials.username, credentials.password, client_ip=ip)
    if previous is not None:
        # the browser's earlier session must not linger, live, behind a cookie it lost
        with contextlib.suppress(GatewayError):
            await services.browser.logout(previous)
    set_session_cookie(response, settings.browser, login.handle, settings.session.lifetime_s)
    response.headers["Cache-Control"] = "no-store"
    return PrincipalOut.of(login.principal)


@router.delete(
    "/session",
    status_code=status.HTTP_204_NO_CONTENT,
    openapi_extra={"parameters": [_CSRF_HEADER]},
    # the logout checks the session's token: the tenant's keys may be out of reach
    responses=error_responses(*CSRF_REFUSALS, SessionStoreUnavailable, KEYS_DOWN),
)
async def delete_session(request: Request, services: ServicesDep, response: Response) -> None:
    """Log a browser out: the session ends everywhere and the cookie is cleared."""
    check_csrf(request, services.settings.cors_origins, services.settings.trusted_proxies)
    handle = session_handle(request, services)
    if handle is not None:
        await services.browser.logout(handle)
    clear_session_cookie(response, services.settings.browser)
