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
from starlette.types import Message, Receive, Scope, Send

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


class GatewayCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, with a short way through for requests without ``Origin``.

    Most of the gateway's traffic (services, curl, the SPA's same-origin calls) sends no
    ``Origin``; for those Starlette still parses the headers twice and wraps the response's
    ``send`` only to append ``Vary: Origin``. This class appends the same header directly.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request; requests with an ``Origin`` take Starlette's way."""
        if scope["type"] != "http" or any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_vary_origin(message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, send_with_vary)


def _with_vary_origin(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Origin`` added to ``Vary`` (one ``Vary`` header, as Starlette's)."""
    varies = [value for name, value in headers if name.lower() == b"vary"]
    if not varies:
        return [*headers, (b"vary", b"Origin")]
    joined = b", ".join([*varies, b"Origin"])
    return [(name, value) for name, value in headers if name.lower() != b"vary"] + [
        (b"vary", joined)
    ]


def install_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Answer preflights and tag responses for ``origins``."""
    app.add_middleware(
        GatewayCORSMiddleware,
        allow_origins=list(origins),
        allow_credentials=True,
        allow_methods=list(ALLOW_METHODS),
        allow_headers=list(ALLOW_HEADERS),
        expose_headers=list(EXPOSE_HEADERS),
        max_age=PREFLIGHT_MAX_AGE_S,
    )
