"""``/api/v2/resource-servers`` and ``/api/v2/tenants/settings``."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from emulator.management_core import (
    Json,
    ManagementError,
    ManagementRoute,
    Paged,
    Prop,
    RequireScope,
    Schema,
    conflict,
    found,
    read_body,
    reject_fields,
    without_none,
)
from emulator.state import ResourceServer, Tenant

router = APIRouter(route_class=ManagementRoute)

_SCOPE = Schema(
    props={"value": Prop("string", min_length=1), "description": Prop("string")},
    required=("value",),
)
_API_PROPS = {
    "name": Prop("string", min_length=1, pattern=r"^[^<>]+$"),
    "scopes": Prop("array", items=Prop("object", fields=_SCOPE)),
    "signing_alg": Prop("string", enum=("HS256", "RS256", "RS512", "PS256")),
    "signing_secret": Prop("string", min_length=16),
    "allow_offline_access": Prop("boolean"),
    "token_lifetime": Prop("integer", minimum=1, maximum=2_592_000),
    "token_lifetime_for_web": Prop("integer", minimum=1, maximum=2_592_000),
    "skip_consent_for_verifiable_first_party_clients": Prop("boolean"),
    "enforce_policies": Prop("boolean"),
    "token_dialect": Prop(
        "string",
        enum=("access_token", "access_token_authz", "rfc9068_profile", "rfc9068_profile_authz"),
    ),
}
# Other fields (consent_policy, token_encryption, ...) are kept in ResourceServer.extra.
CREATE_API = Schema(
    props={**_API_PROPS, "identifier": Prop("string", min_length=1)},
    required=("identifier",),
    additional=True,
)
UPDATE_API = Schema(props=_API_PROPS, additional=True)
_READ_ONLY = ("id", "identifier", "is_system")
# The only settings of the system API (the Management API itself) that Auth0 lets change.
_SYSTEM_MUTABLE = {"token_lifetime", "skip_consent_for_verifiable_first_party_clients"}

SETTINGS = Schema(
    props={
        "friendly_name": Prop("string", min_length=1),
        "default_directory": Prop("string", nullable=True),
        "default_audience": Prop("string", nullable=True),
        "session_lifetime": Prop("number", minimum=1, maximum=8760),
        "idle_session_lifetime": Prop("number", minimum=1, maximum=8760),
        "flags": Prop("object", values=Prop("boolean")),
    },
    additional=True,
)


# -- resource servers --------------------------------------------------------------------------


def api_json(api: ResourceServer) -> Json:
    """The Management API representation of an API."""
    body: Json = without_none(
        {
            "id": api.id,
            "name": api.name,
            "identifier": api.identifier,
            "is_system": api.is_system,
            "scopes": [dict(s) for s in api.scopes],
            "signing_alg": api.signing_alg,
            "allow_offline_access": api.allow_offline_access,
            "token_lifetime": api.token_lifetime,
            "token_lifetime_for_web": api.token_lifetime_for_web,
            "skip_consent_for_verifiable_first_party_clients": (
                api.skip_consent_for_verifiable_first_party_clients
            ),
            "enforce_policies": api.enforce_policies,
            "token_dialect": api.token_dialect,
        }
    )
    body.update(api.extra)  # signing_secret (HS256) lives here too
    return body


def _find_api(tenant: Tenant, key: str) -> ResourceServer:
    """By id, or by identifier (the URL-encoded audience)."""
    api = tenant.resource_servers.get(key) or next(
        (a for a in tenant.resource_servers.values() if a.id == key), None
    )
    return found(api, "The resource server does not exist", "inexistent_resource_server")


def _apply_api_fields(api: ResourceServer, body: Json) -> None:
    for name, value in body.items():
        if name in _API_PROPS and name != "signing_secret":
            setattr(api, name, value)
        elif value is None:
            api.extra.pop(name, None)
        else:
            api.extra[name] = value
    if api.signing_alg == "HS256" and "signing_secret" not in api.extra:
        api.extra["signing_secret"] = secrets.token_urlsafe(24)


@router.post("/api/v2/resource-servers", status_code=201)
async def create_resource_server(
    request: Request,
    tenant: Annotated[Tenant, Depends(RequireScope("create:resource_servers"))],
) -> Json:
    """Create an API; ``identifier`` (the audience) is required, unique and immutable."""
    body = await read_body(request, CREATE_API)
    reject_fields(body, ("id", "is_system"))
    identifier = body.pop("identifier")
    if identifier in tenant.resource_servers:
        raise conflict("A resource server with the same identifier already exists")
    api = ResourceServer(identifier=identifier, name=str(body.get("name") or identifier))
    _apply_api_fields(api, body)
    tenant.resource_servers[identifier] = api
    return api_json(api)


@router.get("/api/v2/resource-servers")
async def list_resource_servers(
    tenant: Annotated[Tenant, Depends(RequireScope("read:resource_servers"))],
    paging: Paged,
) -> list[Json] | Json:
    """List APIs, the system Management API included."""
    apis = [api_json(a) for a in tenant.resource_servers.values()]
    return paging.answer(apis, "resource_servers")


@router.get("/api/v2/resource-servers/{resource_server_id:path}")
async def get_resource_server(
    resource_server_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("read:resource_servers"))],
) -> Json:
    """One API, by id or URL-encoded identifier."""
    return api_json(_find_api(tenant, resource_server_id))


@router.patch("/api/v2/resource-servers/{resource_server_id:path}")
async def update_resource_server(
    request: Request,
    resource_server_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("update:resource_servers"))],
) -> Json:
    """Update an API; the system API only takes its token lifetime and consent setting."""
    api = _find_api(tenant, resource_server_id)
    body = await read_body(request, UPDATE_API)
    reject_fields(body, _READ_ONLY)
    if api.is_system and not set(body) <= _SYSTEM_MUTABLE:
        raise ManagementError(
            403, "You cannot update the Auth0 Management API", "operation_not_supported"
        )
    _apply_api_fields(api, body)
    return api_json(api)


@router.delete("/api/v2/resource-servers/{resource_server_id:path}", status_code=204)
async def delete_resource_server(
    resource_server_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("delete:resource_servers"))],
) -> Response:
    """Delete an API and the client grants to it; unknown is a 204, the system API a 403."""
    try:
        api = _find_api(tenant, resource_server_id)
    except ManagementError:
        return Response(status_code=204)
    if api.is_system:
        raise ManagementError(
            403, "You cannot delete the Auth0 Management API", "operation_not_supported"
        )
    del tenant.resource_servers[api.identifier]
    for grant in [g for g in tenant.client_grants.values() if g.audience == api.identifier]:
        del tenant.client_grants[grant.id]
    return Response(status_code=204)


# -- tenant settings ---------------------------------------------------------------------------


def settings_json(tenant: Tenant) -> Json:
    """``GET /api/v2/tenants/settings``."""
    settings = tenant.settings
    body: Json = without_none(
        {
            "friendly_name": settings.friendly_name,
            "default_directory": settings.default_directory,
            "default_audience": settings.default_audience,
            "session_lifetime": settings.session_lifetime,
            "idle_session_lifetime": settings.idle_session_lifetime,
            "flags": dict(settings.flags),
        }
    )
    body.update(settings.extra)
    return body


@router.get("/api/v2/tenants/settings")
async def get_tenant_settings(
    tenant: Annotated[Tenant, Depends(RequireScope("read:tenant_settings"))],
) -> Json:
    """The tenant's settings."""
    return settings_json(tenant)


@router.patch("/api/v2/tenants/settings")
async def update_tenant_settings(
    request: Request,
    tenant: Annotated[Tenant, Depends(RequireScope("update:tenant_settings"))],
) -> Json:
    """Change settings; ``flags`` merge, ``default_directory`` must name a connection."""
    body = await read_body(request, SETTINGS)
    settings = tenant.settings
    directory = body.get("default_directory")
    if directory and directory not in tenant.connections:
        raise ManagementError(400, "The connection does not exist.", "inexistent_connection")
    for name, value in body.items():
        if name in {"default_directory", "default_audience"}:
            setattr(settings, name, value or None)  # "" or null clears the setting
        elif name == "flags":
            settings.flags.update(value)
        elif name in SETTINGS.props:
            setattr(settings, name, value)
        elif value is None:
            settings.extra.pop(name, None)
        else:
            settings.extra[name] = value
    return settings_json(tenant)
