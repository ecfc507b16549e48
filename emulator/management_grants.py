"""``/api/v2/client-grants``: which client may get tokens for which API, with what."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from emulator.management_core import (
    Json,
    ManagementError,
    ManagementRoute,
    Paged,
    Prop,
    RequireScope,
    Schema,
    check_page_size,
    conflict,
    default_page_size,
    found,
    invalid_query,
    not_found,
    read_body,
)
from emulator.state import ClientGrant, Tenant

router = APIRouter(route_class=ManagementRoute)

_GRANT_PROPS = {
    "scope": Prop("array", items=Prop("string", min_length=1)),
    "organization_usage": Prop("string", enum=("deny", "allow", "require")),
    "allow_any_organization": Prop("boolean"),
}
CREATE_GRANT = Schema(
    props={
        **_GRANT_PROPS,
        "client_id": Prop("string", min_length=1),
        "audience": Prop("string", min_length=1),
        "subject_type": Prop("string", enum=("client", "user")),
        "allow_all_scopes": Prop("boolean"),
    },
    required=("client_id", "audience", "scope"),
)
UPDATE_GRANT = Schema(props=_GRANT_PROPS)


def grant_json(grant: ClientGrant) -> Json:
    """The Management API representation of a client grant."""
    body: Json = {
        "id": grant.id,
        "client_id": grant.client_id,
        "audience": grant.audience,
        "scope": list(grant.scope),
        "allow_any_organization": False,
        "is_system": False,
        "subject_type": "client",
        "allow_all_scopes": False,
    }
    body.update(grant.extra)
    return body


def _check_scopes(tenant: Tenant, audience: str, scopes: list[str]) -> None:
    api = tenant.resource_servers.get(audience)
    if api is not None and not set(scopes) <= set(api.scope_values):
        # Verbatim from a live tenant: unlike the schema errors, no quotes and no final dot.
        raise ManagementError(
            400,
            "Payload validation error: scope must be a subset of resource server scopes",
            "invalid_body",
        )


def _find_grant(tenant: Tenant, grant_id: str) -> ClientGrant:
    grant = tenant.client_grants.get(grant_id)
    return found(grant, "The client grant does not exist", "inexistent_client_grant")


@router.post("/api/v2/client-grants", status_code=201)
async def create_client_grant(
    request: Request, tenant: Annotated[Tenant, Depends(RequireScope("create:client_grants"))]
) -> Json:
    """Let a client get ``client_credentials`` tokens for an API with some of its scopes."""
    body = await read_body(request, CREATE_GRANT)
    if body["client_id"] not in tenant.clients:
        raise not_found("Client not found", "inexistent_client")
    audience = body["audience"]
    if audience not in tenant.resource_servers:
        raise not_found(f"No resource with identifier {audience}", "inexistent_resource_server")
    _check_scopes(tenant, audience, body["scope"])
    if tenant.client_grant(body["client_id"], audience) is not None:
        raise conflict("A client grant for this client and audience already exists.")
    grant = ClientGrant(client_id=body["client_id"], audience=audience, scope=list(body["scope"]))
    grant.extra = {k: v for k, v in body.items() if k not in {"client_id", "audience", "scope"}}
    tenant.client_grants[grant.id] = grant
    return grant_json(grant)


@router.get("/api/v2/client-grants")
async def list_client_grants(
    tenant: Annotated[Tenant, Depends(RequireScope("read:client_grants"))],
    paging: Paged,
    audience: str | None = None,
    client_id: str | None = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    take: Annotated[int | None, Query(ge=1)] = None,
) -> list[Json] | Json:
    """List grants: a bare array, ``include_totals``, or the checkpoint form (``from``/``take``)."""
    check_page_size(take, "take", tenant)
    grants = [
        grant_json(g)
        for g in tenant.client_grants.values()
        if (audience is None or g.audience == audience)
        and (client_id is None or g.client_id == client_id)
    ]
    if from_ is None and take is None:
        return paging.answer(grants, "client_grants")
    ids = [g["id"] for g in grants]
    if from_ is not None and from_ not in ids:
        raise invalid_query("Invalid checkpoint", "from")
    start = ids.index(from_) if from_ is not None else 0
    size = take or default_page_size(tenant.list_limits)
    result: Json = {"client_grants": grants[start : start + size]}
    if start + size < len(grants):
        result["next"] = ids[start + size]
    return result


@router.patch("/api/v2/client-grants/{grant_id}")
async def update_client_grant(
    request: Request,
    grant_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("update:client_grants"))],
) -> Json:
    """Change a grant's scopes (still a subset of the API's)."""
    grant = _find_grant(tenant, grant_id)
    body = await read_body(request, UPDATE_GRANT)
    if "scope" in body:
        _check_scopes(tenant, grant.audience, body["scope"])
        grant.scope = list(body["scope"])
    grant.extra.update({k: v for k, v in body.items() if k != "scope"})
    return grant_json(grant)


@router.delete("/api/v2/client-grants/{grant_id}", status_code=204)
async def delete_client_grant(
    grant_id: str,
    tenant: Annotated[Tenant, Depends(RequireScope("delete:client_grants"))],
) -> Response:
    """Delete a grant; an unknown id is a 204 too."""
    tenant.client_grants.pop(grant_id, None)
    return Response(status_code=204)
