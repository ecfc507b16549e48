"""``POST /tokens/introspect``: RFC 7662 token introspection for internal services."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, ConfigDict

from app.deps.security import ServicesDep
from app.http.body_limit import BodyLimitRoute
from app.http.errors import Unauthorized
from app.http.responses import error_responses

router = APIRouter(prefix="/tokens", tags=["tokens"], route_class=BodyLimitRoute)


class IntrospectionResponse(BaseModel):
    """RFC 7662 section 2.2; only ``active`` when the token is not active."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "active": True,
                    "sub": "auth0|demo-viewer",
                    "scope": "openid profile email",
                    "exp": 1767225600,
                    "client_id": "local-gateway",
                    "permissions": ["read:venues"],
                    "email": "viewer@venues.local",
                    "token_type": "Bearer",
                },
                {"active": False},
            ]
        }
    )

    active: bool
    sub: str | None = None
    scope: str | None = None
    exp: int | None = None
    client_id: str | None = None
    permissions: list[str] | None = None
    email: str | None = None
    token_type: str | None = None


def _check_basic(request: Request, clients: dict[str, str]) -> None:
    challenge = {"WWW-Authenticate": 'Basic realm="token-introspection"'}
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unauthorized(
            "Introspection needs HTTP Basic credentials.", code="invalid_client", headers=challenge
        )
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized(
            "Malformed Basic credentials.", code="invalid_client", headers=challenge
        ) from exc
    expected = clients.get(client_id)
    # compare against something even for unknown clients, so timing says nothing
    if not hmac.compare_digest(secret.encode(), (expected or "\0" * 32).encode()) or not expected:
        raise Unauthorized(
            "Unknown client or wrong secret.", code="invalid_client", headers=challenge
        )


@router.post(
    "/introspect",
    response_model_exclude_none=True,
    responses=error_responses(401, 503),
)
async def introspect_token(
    request: Request,
    token: Annotated[str, Form(max_length=4096)],
    services: ServicesDep,
    token_type_hint: Annotated[str | None, Form(max_length=64)] = None,
) -> IntrospectionResponse:
    """Whether a token is active, and whose it is (internal services, HTTP Basic)."""
    clients = {k: v.get_secret_value() for k, v in services.settings.introspection.clients.items()}
    _check_basic(request, clients)
    try:
        principal = await services.resolver.resolve(token)
    except Unauthorized:
        return IntrospectionResponse(active=False)
    return IntrospectionResponse(
        active=True,
        sub=principal.sub,
        scope=" ".join(principal.scopes) or None,
        exp=principal.expires_at,
        client_id=principal.client_id,
        permissions=list(principal.permissions),
        email=principal.email,
        token_type="Bearer",  # noqa: S106 - the RFC 7662 token type, not a secret
    )
