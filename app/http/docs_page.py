"""The docs page: Swagger UI served by the gateway itself, logging in through the password flow.

Swagger UI's script and stylesheet come from the ``fastapi-offline`` package and are served
under ``/docs/assets``, not from a CDN: the page works on a machine without internet, and no
third-party script runs on a page where users type their password. A Content-Security-Policy
keeps it that way. "Authorize" posts ``grant_type=password&username=..&password=..`` as a form
to ``/auth/login`` (the ``tokenUrl`` of :data:`app.deps.security.oauth2_scheme`); the access
token is kept across reloads (``persistAuthorization``), the password never: ``docs_page.js``
drops it before Swagger UI stores anything, ends the session at the gateway on Logout, and
refreshes an expired token once (or says to log in again). The page runs no inline script:
its configuration is a JSON block that ``docs_page.js`` reads.
"""

from __future__ import annotations

import json
from functools import cache
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from app.http.openapi import complete_responses

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
SCRIPT_URL = "/docs/session.js"

SWAGGER_UI_PARAMETERS = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
    "persistAuthorization": True,
    "displayRequestDuration": True,
    "tryItOutEnabled": True,
    # no badge fetched from validator.swagger.io
    "validatorUrl": None,
}

# Scripts from this origin only, none inline; Swagger UI sets inline styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def swagger_ui_assets() -> Path:
    """The directory holding ``swagger-ui-bundle.js``, ``swagger-ui.css`` and the favicon."""
    return Path(str(files("fastapi_offline") / "static"))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" href="{assets}/favicon.png">
<title>{title}</title>
</head>
<body>
<div id="swagger-ui"></div>
<script id="docs-config" type="application/json">{config}</script>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{script}"></script>
</body>
</html>
"""


@cache
def session_script() -> bytes:
    """``docs_page.js``: starts Swagger UI, keeps the password out of storage, ends sessions."""
    return (files("app.http") / "docs_page.js").read_bytes()


def docs_page_html(app: FastAPI, root: str) -> str:
    """The page for an app served under ``root`` (the ASGI ``root_path``)."""
    config: dict[str, Any] = {
        "root": root,
        "scheme": "AuthLogin",
        "openapi_url": f"{root}{app.openapi_url}",
        "oauth2_redirect_url": f"{root}{OAUTH2_REDIRECT_URL}",
        "init_oauth": app.swagger_ui_init_oauth or {},
        "parameters": SWAGGER_UI_PARAMETERS,
    }
    # inside <script>: "<" escaped so that no value can close the element
    data = json.dumps(config).replace("<", "\\u003c")
    return _PAGE.format(
        assets=escape(f"{root}{ASSETS_URL}"),
        script=escape(f"{root}{SCRIPT_URL}"),
        title=escape(f"{app.title} - API docs"),
        config=data,
    )


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` for ``app.openapi_url``, with its assets.

    The OpenAPI document is completed with the answers routes may not document
    (:func:`app.http.openapi.complete_responses`).
    """
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the docs page needs the OpenAPI document (openapi_url)")
    complete_responses(app)
    app.mount(ASSETS_URL, StaticFiles(directory=swagger_ui_assets()), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def get_docs_page(request: Request) -> HTMLResponse:
        """The Swagger UI page."""
        root = request.scope.get("root_path", "").rstrip("/")
        page = HTMLResponse(docs_page_html(app, root))
        page.headers.update(_PAGE_HEADERS)
        return page

    @app.get(SCRIPT_URL, include_in_schema=False)
    async def get_docs_script() -> Response:
        """The page's script (``docs_page.js``)."""
        script = Response(session_script(), media_type="text/javascript")
        script.headers.update(_PAGE_HEADERS)
        return script

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def get_docs_oauth2_redirect() -> HTMLResponse:
        """Swagger UI's OAuth2 redirect page (unused by the password flow, kept for others)."""
        page = get_swagger_ui_oauth2_redirect_html()
        # its one inline script is Swagger UI's own
        policy = CONTENT_SECURITY_POLICY.replace("script-src 'self'", "script-src 'unsafe-inline'")
        page.headers.update(_PAGE_HEADERS | {"Content-Security-Policy": policy})
        return page
