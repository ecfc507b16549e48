"""CORS for the single-page app: exact origins per environment, with credentials.

In bearer mode the SPA sends its access token in ``Authorization``; in cookie mode its browser
sends the session cookie, which a cross-origin ``fetch`` only does, and only gets to read the
answer of, when the gateway answers ``Access-Control-Allow-Credentials: true`` for the page's
exact origin. Allowed origins come from ``GATEWAY_CORS_ORIGINS`` (``local`` defaults to the
SPA's dev server); there is no wildcard, and no other origin is ever echoed back. A preflight
from any other origin gets 400 without ``Access-Control-Allow-Origin``. ``X-Requested-With``
is allowed: cookie mode's CSRF defence requires it on every change.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

ALLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
    "X-Requested-With",
)
EXPOSE_HEADERS = ("ETag", "Location", "Retry-After", "WWW-Authenticate", "X-Request-ID")
PREFLIGHT_MAX_AGE_S = 600


def install_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Answer preflights and tag responses for ``origins``."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_credentials=True,
        allow_methods=list(ALLOW_METHODS),
        allow_headers=list(ALLOW_HEADERS),
        expose_headers=list(EXPOSE_HEADERS),
        max_age=PREFLIGHT_MAX_AGE_S,
    )
