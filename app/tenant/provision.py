"""Bring a tenant to its :class:`~app.tenant.spec.TenantSpec`: plan, print, apply; idempotent.

:func:`plan` reads the tenant through the Management API and lists the changes needed, each
with the requirements it fixes (``current -> desired``); a tenant that already matches gives an
empty plan, so running provisioning again changes nothing. :func:`apply` makes the changes in
order (tenant settings, API, client, the client's Management grant), and reports a new
client's id and secret (the secret is shown by Auth0 once, at creation).

The client is found by its name, ``<company>-<env>``; two clients with that name are an error
to settle by hand rather than a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from app.clients.management import ManagementClient
from app.tenant.spec import Json, Requirement, Target, TenantSpec


class ProvisionError(Exception):
    """The tenant cannot be brought to the desired state without a human decision."""


@dataclass(frozen=True)
class Change:
    """One create or update of one tenant object."""

    target: Target
    label: str
    action: Literal["create", "update"]
    details: tuple[str, ...]
    body: Json
    object_id: str | None = None


@dataclass
class Plan:
    """What :func:`apply` would do."""

    spec: TenantSpec
    changes: list[Change] = field(default_factory=list)
    client_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What :func:`apply` did."""

    applied: tuple[Change, ...]
    client_id: str | None
    client_secret: SecretStr | None = field(default=None, repr=False)


async def plan(api: ManagementClient, spec: TenantSpec) -> Plan:
    """Read the tenant and list the changes that make it match ``spec``."""
    requirements = spec.requirements()
    result = Plan(spec)

    settings = await api.get_tenant_settings()
    result.changes += _updates(Target.TENANT, "tenant settings", settings, requirements, None)

    apis = [a for a in await api.list_resource_servers() if a.get("identifier") == spec.audience]
    if apis and apis[0].get("is_system"):
        raise ProvisionError(f"{spec.audience} is a system API; choose another audience")
    if apis:
        result.changes += _updates(
            Target.API, f"API {spec.audience}", apis[0], requirements, str(apis[0].get("id"))
        )
    else:
        result.changes.append(_create(Target.API, f"API {spec.audience}", spec.api_create_body()))

    clients = [c for c in await api.list_clients() if c.get("name") == spec.client_name]
    if len(clients) > 1:
        ids = ", ".join(str(c.get("client_id")) for c in clients)
        raise ProvisionError(
            f"{len(clients)} applications are named {spec.client_name} ({ids}); delete or "
            "rename all but the gateway's, then run provision again"
        )
    grant_label = f"management grant {spec.client_name} -> {spec.management_audience}"
    grant_body: Json = {"audience": spec.management_audience, "scope": list(spec.management_scopes)}
    if not clients:
        result.changes.append(
            _create(Target.CLIENT, f"client {spec.client_name}", spec.client_create_body())
        )
        result.changes.append(_create(Target.GRANT, grant_label, grant_body))
        return result

    client = clients[0]
    result.client_id = str(client["client_id"])
    result.changes += _updates(
        Target.CLIENT, f"client {spec.client_name}", client, requirements, result.client_id
    )
    grants = [
        g
        for g in await api.list_client_grants(
            client_id=result.client_id, audience=spec.management_audience
        )
        if g.get("client_id") == result.client_id and g.get("audience") == spec.management_audience
    ]
    if grants:
        result.changes += _updates(
            Target.GRANT, grant_label, grants[0], requirements, str(grants[0].get("id"))
        )
    else:
        result.changes.append(_create(Target.GRANT, grant_label, grant_body))
    return result


async def apply(
    api: ManagementClient, planned: Plan, *, report: Callable[[Change], None] | None = None
) -> Outcome:
    """Make the planned changes, in order; ``report`` hears of each one as it is made.

    Stops at the first refusal: what was reported is done, and running again plans the rest.
    """
    client_id = planned.client_id
    secret: SecretStr | None = None
    applied: list[Change] = []
    for change in planned.changes:
        if change.action == "create":
            if change.target is Target.API:
                await api.create_resource_server(change.body)
            elif change.target is Target.CLIENT:
                created = await api.create_client(change.body)
                client_id = str(created["client_id"])
                secret = SecretStr(str(created.get("client_secret", "")))
            elif change.target is Target.GRANT:
                if client_id is None:
                    raise ProvisionError("the client grant needs the client, which is missing")
                await api.create_client_grant({**change.body, "client_id": client_id})
        else:
            object_id = change.object_id or ""
            if change.target is Target.TENANT:
                await api.update_tenant_settings(change.body)
            elif change.target is Target.API:
                await api.update_resource_server(object_id, change.body)
            elif change.target is Target.CLIENT:
                await api.update_client(object_id, change.body)
            elif change.target is Target.GRANT:
                await api.update_client_grant(object_id, change.body)
        applied.append(change)
        if report is not None:
            report(change)
    return Outcome(tuple(applied), client_id, secret)


def render(planned: Plan) -> list[str]:
    """The plan as lines: ``+`` creates, ``~`` updates, each with what it fixes."""
    if not planned.changes:
        return ["no changes: the tenant already matches"]
    lines = [f"{len(planned.changes)} change(s):"]
    for change in planned.changes:
        lines.append(f"  {'+' if change.action == 'create' else '~'} {change.label}")
        lines += [f"      {detail}" for detail in change.details]
    return lines


def _updates(
    target: Target,
    label: str,
    current: Json,
    requirements: list[Requirement],
    object_id: str | None,
) -> list[Change]:
    failing = [
        r
        for r in requirements
        # the client is found by its name, so its name holds by construction
        if r.target is target and r.name != "client name" and not r.holds(current)
    ]
    if not failing:
        return []
    body: Json = {}
    for requirement in failing:
        body.update(requirement.fix(current))
    details = tuple(f"{r.name}: {_show(r.read(current))} -> {_show(r.desired)}" for r in failing)
    return [Change(target, label, "update", details, body, object_id)]


def _create(target: Target, label: str, body: Json) -> Change:
    details = tuple(f"{name}={_show(value)}" for name, value in body.items())
    return Change(target, label, "create", details, body)


def _show(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        value = [v.get("value", v) for v in value]  # an API's scopes: their names say enough
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."
