"""CORS for the single-page app: exact origins per environment, no credentials.

The SPA sends its access token in ``Authorization``, never a cookie, so credentials stay off
(``Access-Control-Allow-Credentials`` is never sent) and the browser shares nothing ambient.
Allowed origins come from ``GATEWAY_CORS_ORIGINS`` (``local`` defaults to the Vite dev server).
A preflight from any other origin gets 400 without ``Access-Control-Allow-Origin``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

ALLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOW_HEADERS = ("Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Request-ID")
EXPOSE_HEADERS = ("ETag", "Location", "Retry-After", "WWW-Authenticate", "X-Request-ID")
PREFLIGHT_MAX_AGE_S = 600


def install_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Answer preflights and tag responses for ``origins``."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_credentials=False,
        allow_methods=list(ALLOW_METHODS),
        allow_headers=list(ALLOW_HEADERS),
        expose_headers=list(EXPOSE_HEADERS),
        max_age=PREFLIGHT_MAX_AGE_S,
    )
