"""``/api/v2/clients``."""

from __future__ import annotations

import secrets
import string
import textwrap
from ipaddress import ip_address
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Request, Response

from emulator.management_core import (
    Json,
    ManagementRoute,
    Paged,
    Prop,
    RequireScope,
    Schema,
    conflict,
    found,
    merge_one_level,
    read_body,
    reject_fields,
    select_fields,
)
from emulator.state import PASSWORD_REALM_GRANT, Client, Tenant

router = APIRouter(route_class=ManagementRoute)

GRANT_TYPES = (
    "authorization_code",
    "implicit",
    "refresh_token",
    "client_credentials",
    "password",
    PASSWORD_REALM_GRANT,
    "http://auth0.com/oauth/grant-type/mfa-oob",
    "http://auth0.com/oauth/grant-type/mfa-otp",
    "http://auth0.com/oauth/grant-type/mfa-recovery-code",
    "http://auth0.com/oauth/grant-type/passwordless/otp",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:openid:params:grant-type:ciba",
)
_REFRESH_TOKEN = Schema(
    props={
        "rotation_type": Prop("string", enum=("rotating", "non-rotating")),
        "expiration_type": Prop("string", enum=("expiring", "non-expiring")),
        "leeway": Prop("integer", minimum=0),
        "token_lifetime": Prop("integer", minimum=1, maximum=31_557_600),
        "infinite_token_lifetime": Prop("boolean"),
        "idle_token_lifetime": Prop("integer", minimum=1, maximum=31_557_600),
        "infinite_idle_token_lifetime": Prop("boolean"),
        "policies": Prop("array"),
    }
)
_JWT_CONFIGURATION = Schema(
    props={
        "lifetime_in_seconds": Prop("integer", minimum=0),
        "secret_encoded": Prop("boolean"),
        "scopes": Prop("object"),
        "alg": Prop("string", enum=("HS256", "RS256", "RS512", "PS256")),
    }
)
_CLIENT_PROPS = {
    "name": Prop("string", min_length=1, pattern=r"^[^<>]+$"),
    "client_secret": Prop("string", min_length=1),
    "app_type": Prop("string"),
    "token_endpoint_auth_method": Prop(
        "string", enum=("none", "client_secret_post", "client_secret_basic")
    ),
    "grant_types": Prop("array", items=Prop("string", enum=GRANT_TYPES)),
    "is_token_endpoint_ip_header_trusted": Prop("boolean"),
    "is_first_party": Prop("boolean"),
    "oidc_conformant": Prop("boolean"),
    "jwt_configuration": Prop("object", fields=_JWT_CONFIGURATION),
    "refresh_token": Prop("object", fields=_REFRESH_TOKEN),
    "client_metadata": Prop("object", values=Prop("string", nullable=True)),
}
# Anything else (callbacks, allowed_origins, ...) is kept in Client.extra and echoed back.
CREATE_CLIENT = Schema(
    props={**_CLIENT_PROPS, "client_id": Prop("string", min_length=1)},
    required=("name",),
    additional=True,
)
UPDATE_CLIENT = Schema(props=_CLIENT_PROPS, additional=True)
_READ_ONLY = ("client_id", "tenant", "global", "signing_keys")
# Auth0's Dashboard defaults for a confidential application.
_DEFAULT_GRANTS = ["implicit", "authorization_code", "refresh_token", "client_credentials"]


# -- clients -----------------------------------------------------------------------------------


def _tenant_name(tenant: Tenant) -> str:
    host = urlparse(tenant.issuer).hostname or "emulator"
    try:
        ip_address(host)
    except ValueError:
        return "emulator" if host == "localhost" else host.split(".", 1)[0]
    return "emulator"


def _signing_keys(tenant: Tenant) -> list[Json]:
    der_b64 = tenant.keys[0].jwk["x5c"][0]
    pem = "\r\n".join(
        ["-----BEGIN CERTIFICATE-----", *textwrap.wrap(der_b64, 64), "-----END CERTIFICATE-----"]
    )
    return [{"cert": pem + "\r\n", "subject": "deprecated"}]


def client_json(tenant: Tenant, client: Client) -> Json:
    """The Management API representation of an application."""
    body: Json = {
        "tenant": _tenant_name(tenant),
        "global": False,
        "is_token_endpoint_ip_header_trusted": client.is_token_endpoint_ip_header_trusted,
        "name": client.name,
        "is_first_party": client.is_first_party,
        "oidc_conformant": client.oidc_conformant,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "app_type": client.app_type,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": list(client.grant_types),
        "jwt_configuration": dict(client.jwt_configuration),
        "refresh_token": dict(client.refresh_token),
        "signing_keys": _signing_keys(tenant),
    }
    body.update(client.extra)
    return body


def _find_client(tenant: Tenant, client_id: str) -> Client:
    return found(tenant.clients.get(client_id), "The client does not exist", "inexistent_client")


def _apply_client_fields(client: Client, body: Json) -> None:
    for name in (
        "name",
        "client_secret",
        "app_type",
        "token_endpoint_auth_method",
        "grant_types",
        "is_token_endpoint_ip_header_trusted",
        "is_first_party",
        "oidc_conformant",
    ):
        if name in body:
            setattr(client, name, body[name])
    # Auth0 replaces these objects field by field, as given.
    if "jwt_configuration" in body:
        client.jwt_configuration = {**client.jwt_configuration, **body["jwt_configuration"]}
    if "refresh_token" in body:
        client.refresh_token = {**client.refresh_token, **body["refresh_token"]}
    for name, value in body.items():
        if name in _CLIENT_PROPS and name != "client_metadata":
            continue
        if name == "client_metadata":
            current = client.extra.get(name, {})
            client.extra[name] = merge_one_level(current, value)
        elif value is None:
            client.extra.pop(name, None)
        else:
            client.extra[name] = value


@router.post("/api/v2/clients", status_code=201)
async def create_client(
    request: Request, tenant: Annotated[Tenant, Depends(RequireScope("create:clients"))]
) -> Json:
    """Create an application; ``client_id`` and ``client_secret`` are generated unless given."""
    body = await read_body(request, CREATE_CLIENT)
    reject_fields(body, _READ_ONLY[1:])
    alphabet = string.ascii_letters + string.digits
    client_id = body.get("client_id") or "".join(secrets.choice(alphabet) for _ in range(32))
    if client_id in tenant.clients:
        raise conflict("A client with this client_id already exists")
    public = body.get("app_type") in {"spa", "native"}
    client = Client(
        client_id=client_id,
        client_secret=secrets.token_urlsafe(48),
        name=body["name"],
        token_endpoint_auth_method="none" if public else "client_secret_post",
        grant_types=[g for g in _DEFAULT_GRANTS if not (public and g == "client_credentials")],
    )
    _apply_client_fields(client, {k: v for k, v in body.items() if k != "client_id"})
    tenant.clients[client.client_id] = client
    return client_json(tenant, client)


@router.get("/api/v2/clients")
async def list_clients(
    tenant: Annotated[Tenant, Depends(RequireScope("read:clients"))],
    paging: Paged,
    app_type: str | None = None,
    is_first_party: bool | None = None,
    is_global: bool | None = None,
    fields: str | None = None,
    include_fields: bool = True,
) -> list[Json] | Json:
    """List applications (all of them unless ``page`` / ``per_page`` is sent)."""
    wanted_types = set(app_type.split(",")) if app_type else None
    clients = [
        client_json(tenant, c)
        for c in tenant.clients.values()
        if (wanted_types is None or c.app_type in wanted_types)
        and (is_first_party is None or c.is_first_party == is_first_party)
        and not is_global
    ]
    return paging.answer(clients, "clients", fields, include_fields)


@router.get("/api/v2/clients/{client_id}")
async def get_client(
    client_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("read:clients"))],
    fields: str | None = None,
    include_fields: bool = True,
) -> Json:
    """One application."""
    client = _find_client(tenant, client_id)
    return select_fields(client_json(tenant, client), fields, include_fields)


@router.patch("/api/v2/clients/{client_id}")
async def update_client(
    request: Request,
    client_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("update:clients"))],
) -> Json:
    """Update an application; ``refresh_token`` and ``jwt_configuration`` merge field by field."""
    client = _find_client(tenant, client_id)
    body = await read_body(request, UPDATE_CLIENT)
    reject_fields(body, _READ_ONLY)
    _apply_client_fields(client, body)
    return client_json(tenant, client)


@router.delete("/api/v2/clients/{client_id}", status_code=204)
async def delete_client(
    client_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("delete:clients"))],
) -> Response:
    """Delete an application and its client grants; an unknown id is a 204 too."""
    tenant.clients.pop(client_id, None)
    for grant in [g for g in tenant.client_grants.values() if g.client_id == client_id]:
        del tenant.client_grants[grant.id]
    return Response(status_code=204)
