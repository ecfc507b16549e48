"""The example SPA's server (``examples/spa``), as ``gateway dev`` runs it on port 5173.

The SPA's files as they are (plain ES modules, no build step), and ``/config.json`` telling the
page where the gateway is. A Content-Security-Policy lets the page run its own scripts only and
talk to itself and the gateway only: the defence in depth a real SPA deployment should have.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: ``examples/spa`` of the source tree this package runs from.
SPA_DIR = Path(__file__).resolve().parent.parent / "examples" / "spa"


class _Headers:
    """Adds the security headers, and ``no-store`` so an edited file shows on reload."""

    def __init__(self, app: ASGIApp, gateway_url: str) -> None:
        self.app = app
        self.headers = [
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            (
                b"content-security-policy",
                (
                    f"default-src 'self'; connect-src 'self' {gateway_url}; "
                    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
                ).encode(),
            ),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_spa_app(gateway_url: str, directory: Path = SPA_DIR) -> ASGIApp:
    """Serve the SPA in ``directory``, pointed at the gateway at ``gateway_url``."""
    if not (directory / "index.html").is_file():
        raise FileNotFoundError(f"no example SPA at {directory}")
    origin = gateway_url.rstrip("/")

    async def config(request: Request) -> Response:
        return JSONResponse({"gateway": origin})

    app = Starlette(
        routes=[
            Route("/config.json", config),
            Mount("/", StaticFiles(directory=directory, html=True)),
        ]
    )
    return _Headers(app, origin)
