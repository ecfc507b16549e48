"""The session cookie of cookie mode: how it is set and how it is cleared.

``HttpOnly`` (no script reads it), ``Secure`` with the ``__Host-`` prefix (no ``Domain``, path
``/``: only this host, over https, or http://localhost and http://127.0.0.1, which browsers
count as secure), and ``SameSite`` from the settings (``Strict`` by default).
"""

from __future__ import annotations

from starlette.responses import Response

from settings import BrowserSettings


def set_session_cookie(
    response: Response, settings: BrowserSettings, handle: str, max_age_s: int
) -> None:
    """Give the browser its session handle for ``max_age_s`` seconds."""
    response.set_cookie(
        settings.cookie,
        handle,
        max_age=max_age_s,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite=settings.same_site,
    )


def clear_session_cookie(response: Response, settings: BrowserSettings) -> None:
    """Tell the browser to drop the session cookie."""
    response.delete_cookie(
        settings.cookie,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite=settings.same_site,
    )


def clearing_header(settings: BrowserSettings) -> str:
    """The ``Set-Cookie`` value that drops the cookie, for error answers."""
    response = Response()
    clear_session_cookie(response, settings)
    return response.headers["set-cookie"]
