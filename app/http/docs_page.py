"""The docs page: Swagger UI served by the gateway itself, logging in through the password flow.

Swagger UI's script and stylesheet come from the ``fastapi-offline`` package and are served
under ``/docs/assets``, not from a CDN: the page works on a machine without internet, and no
third-party script runs on a page where users type their password. A Content-Security-Policy
keeps it that way. "Authorize" posts ``grant_type=password&username=..&password=..`` as a form
to ``/auth/login`` (the ``tokenUrl`` of :data:`app.deps.security.oauth2_scheme`); the token is
kept across reloads (``persistAuthorization``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.http.openapi import complete_responses

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"

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

# The page's one inline script starts Swagger UI; everything else comes from this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
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
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API docs",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            init_oauth=app.swagger_ui_init_oauth,
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        page.headers.update(_PAGE_HEADERS)
        return page

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def get_docs_oauth2_redirect() -> HTMLResponse:
        """Swagger UI's OAuth2 redirect page (unused by the password flow, kept for others)."""
        page = get_swagger_ui_oauth2_redirect_html()
        page.headers.update(_PAGE_HEADERS)
        return page
