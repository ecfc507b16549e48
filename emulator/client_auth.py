"""Reading Authentication API requests: the body (form or JSON), client authentication, errors.

Auth0's Authentication API answers errors as ``{"error", "error_description"}`` (some add
``error_uri`` or ``mfa_token``); :class:`OAuthError` carries one such answer from deep in a grant
to the route, which renders it with :meth:`OAuthError.response`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from emulator.state import Client, Tenant

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Auth0's rate-limit answer text (docs/emulator.md, "Errors of /oauth/token").
RATE_LIMITED = (
    "Too many requests. Check the X-RateLimit-Limit, X-RateLimit-Remaining and "
    "X-RateLimit-Reset headers."
)


@dataclass
class OAuthError(Exception):
    """An Authentication API error answer."""

    status: int
    error: str
    description: str
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> JSONResponse:
        """The JSON answer, with the token endpoint's no-store headers and ``headers``."""
        body = {"error": self.error, "error_description": self.description, **self.extra}
        return JSONResponse(body, status_code=self.status, headers={**NO_STORE, **self.headers})


def unauthorized_client() -> OAuthError:
    """Unknown client or wrong secret.

    Live Auth0 answers 401 access_denied "Unauthorized"; its OAS says invalid_client.
    """
    return OAuthError(401, "access_denied", "Unauthorized")


def missing(name: str) -> OAuthError:
    """A required parameter is absent (or null, or empty)."""
    return OAuthError(400, "invalid_request", f"Missing required parameter: {name}")


Params = dict[str, str]


async def read_params(request: Request) -> Params:
    """The request's parameters from a form or JSON body.

    JSON nulls and empty strings count as absent: auth0-python sends ``null`` for every unset
    optional field and ``"scope": ""`` on refresh.
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw: dict[str, Any]
    if content_type.endswith("json"):
        body = await request.body()
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            raise OAuthError(400, "invalid_request", "Invalid JSON body") from None
        if not isinstance(parsed, dict):
            raise OAuthError(400, "invalid_request", "The body must be a JSON object")
        raw = parsed
    elif content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        form = await request.form()
        raw = {k: v for k, v in form.items() if not isinstance(v, UploadFile)}
    elif not await request.body():
        raw = {}
    else:
        raise OAuthError(400, "invalid_request", f"Unsupported content type: {content_type}")
    params: Params = {}
    for name, value in raw.items():
        if value is None or value == "":
            continue
        if isinstance(value, dict | list):
            raise OAuthError(400, "invalid_request", f"Invalid parameter: {name}")
        params[name] = value if isinstance(value, str) else json.dumps(value)
    return params


@dataclass(frozen=True)
class AuthenticatedClient:
    """The calling application, and whether it proved itself with its secret."""

    client: Client
    by_secret: bool


def authenticate_client(
    tenant: Tenant, authorization: str | None, params: Params
) -> AuthenticatedClient:
    """``client_secret_basic``, ``client_secret_post``, or a public client by id alone.

    Both secret methods are accepted whatever ``token_endpoint_auth_method`` says (UNCONFIRMED
    whether Auth0 enforces the configured method). A missing ``client_id`` is answered like an
    unknown one, 401 access_denied (UNCONFIRMED). ``private_key_jwt`` is not emulated.
    """
    client_id = params.get("client_id")
    secret = params.get("client_secret")
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized_client() from None
        basic_id, colon, basic_secret = decoded.partition(":")
        if not colon or (client_id is not None and client_id != basic_id):
            raise unauthorized_client()
        client_id, secret = basic_id, basic_secret
    client = tenant.clients.get(client_id or "")
    if client is None or "client_assertion" in params:
        raise unauthorized_client()
    if secret is None:
        if client.token_endpoint_auth_method == "none":
            return AuthenticatedClient(client, by_secret=False)
        raise unauthorized_client()
    if not secrets.compare_digest(secret.encode(), client.client_secret.encode()):
        raise unauthorized_client()
    return AuthenticatedClient(client, by_secret=True)
