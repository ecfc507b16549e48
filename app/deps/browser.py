"""The cookie half of the security dependency: a browser's session cookie -> principal."""

from __future__ import annotations

from fastapi import Request

from app.auth.principal import Principal
from app.http.cookies import clearing_header
from app.http.csrf import check_csrf
from app.http.errors import Unauthorized
from app.services import Services


def session_handle(request: Request, services: Services) -> str | None:
    """The session cookie's value, when the request carries one."""
    return request.cookies.get(services.settings.browser.cookie) or None


async def cookie_principal(request: Request, services: Services, handle: str) -> Principal:
    """The caller of a cookie request: CSRF checked for changes, the access token refreshed
    when due; a 401 also drops the cookie (it is worth nothing any more)."""
    settings = services.settings
    check_csrf(request, settings.cors_origins, settings.trusted_proxies)
    try:
        return await services.browser.principal(handle)
    except Unauthorized as exc:
        exc.headers["Set-Cookie"] = clearing_header(settings.browser)
        raise
