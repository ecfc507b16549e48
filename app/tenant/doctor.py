"""``gateway doctor``: check an environment's tenant with the gateway's own credentials.

Live first: the gateway's client gets a Management API token (its id, secret, Post
authentication and ``client_credentials`` grant all work) carrying the scopes it needs. Then
every requirement of the :class:`~app.tenant.spec.TenantSpec` is read back through the
Management API (the read-only scopes provisioning grants exist for this). With a probe user, a
password login must return a refresh token, a valid RS256 access token with permissions, and a
refresh must rotate the refresh token (the probe's tokens are revoked afterwards).

The result is one :class:`Check` per line; any ``fail`` makes the command exit 1. Lists that
have more than the spec needs (grant types, Management scopes) are a ``warn``: they work, but
provisioning would make them exact.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from app.clients.auth0 import Auth0AuthClient, TokenSet
from app.clients.jwks import JwksCache
from app.clients.management import PROVISIONING, ManagementClient
from app.clients.management_errors import ManagementFailure, ManagementNotFound
from app.clients.management_tokens import StaticToken
from app.clients.token_validator import TokenValidator
from app.http.errors import GatewayError
from app.tenant.config import LOCAL_COMPANY
from app.tenant.spec import Json, Requirement, Target, TenantSpec
from settings.model import Settings

Status = Literal["ok", "warn", "fail", "skip"]
_DETAIL_WIDTH = 72


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: Status
    detail: str
    hint: str = ""


@dataclass(frozen=True)
class Probe:
    """A user of the connection to log in with (a test account, not a person's)."""

    username: str
    password: SecretStr


def doctor_spec(settings: Settings, company: str | None = None) -> TenantSpec:
    """The desired state implied by the gateway's settings (``company`` overrides)."""
    name = company or settings.company or (LOCAL_COMPANY if settings.is_local else "")
    return TenantSpec(
        company=name,
        env=settings.env.value,
        base_url=settings.auth0.base_url,
        audience=settings.auth0.audience or "",
        connection=settings.auth0.connection,
    )


async def diagnose(
    settings: Settings,
    *,
    company: str | None = None,
    probe: Probe | None = None,
    http: httpx.AsyncClient | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[Check]:
    """Every check, in order; never raises for what it finds."""
    if http is None:
        async with httpx.AsyncClient(
            timeout=settings.auth0.timeout_s, verify=settings.auth0.tls_verify()
        ) as client:
            return await diagnose(settings, company=company, probe=probe, http=client, sleep=sleep)
    spec = doctor_spec(settings, company)
    auth0 = Auth0AuthClient(http, settings.auth0)
    checks: list[Check] = []
    try:
        tokens = await auth0.client_credentials(spec.management_audience)
    except GatewayError as exc:
        checks.append(
            Check(
                "client credentials",
                "fail",
                f"{exc.code}: {exc.description}",
                "check GATEWAY_AUTH0__CLIENT_ID/__CLIENT_SECRET, the client's Post auth method "
                f"and its Management API grant; run `gateway provision --env {spec.env}`",
            )
        )
        checks += [Check(r.name, "skip", "needs a Management API token") for r in _all(spec)]
    else:
        checks.append(
            Check("client credentials", "ok", "id, secret (Post) and client_credentials work")
        )
        checks.append(_scopes_check(spec, tokens))
        api = ManagementClient(
            http, spec.base_url, StaticToken(tokens.access_token), retry=PROVISIONING, sleep=sleep
        )
        checks += await _configuration(api, spec, settings)
    if probe is not None:
        checks += await _probe(auth0, settings, probe)
    return checks


def failed(checks: list[Check]) -> bool:
    """True when any check failed."""
    return any(check.status == "fail" for check in checks)


def render(checks: list[Check]) -> list[str]:
    """The table: status, check, what was found, and how to fix what failed."""
    width = max([len("CHECK"), *(len(c.name) for c in checks)])
    lines = [f"{'STATUS':<6}  {'CHECK':<{width}}  DETAIL"]
    for check in checks:
        detail = check.detail
        if len(detail) > _DETAIL_WIDTH:
            detail = detail[: _DETAIL_WIDTH - 3] + "..."
        line = f"{check.status.upper():<6}  {check.name:<{width}}  {detail}"
        if check.status != "ok" and check.hint:
            line += f"  -> {check.hint}"
        lines.append(line)
    counts = {s: sum(c.status == s for c in checks) for s in ("ok", "warn", "fail", "skip")}
    lines.append(
        f"{len(checks)} checks: {counts['ok']} ok, {counts['warn']} warnings, "
        f"{counts['fail']} failed, {counts['skip']} skipped"
    )
    return lines


# -- the checks -----------------------------------------------------------------------------


def _all(spec: TenantSpec) -> list[Requirement]:
    return spec.requirements()


def _scopes_check(spec: TenantSpec, tokens: TokenSet) -> Check:
    granted = set((tokens.scope or _claims(tokens.access_token).get("scope") or "").split())
    missing = [s for s in spec.management_scopes if s not in granted]
    if missing:
        return Check(
            "management scopes",
            "fail",
            f"the token lacks {' '.join(missing)}",
            f"run `gateway provision --env {spec.env}` (the client's Management API grant)",
        )
    return Check("management scopes", "ok", " ".join(spec.management_scopes))


async def _configuration(
    api: ManagementClient, spec: TenantSpec, settings: Settings
) -> list[Check]:
    client_id = settings.auth0.client_id or ""
    readers: dict[Target, tuple[str, Callable[[], Awaitable[Json | None]]]] = {
        Target.TENANT: ("tenant settings", api.get_tenant_settings),
        Target.CLIENT: (f"client {client_id}", lambda: _find_client(api, client_id)),
        Target.API: (f"API {spec.audience}", lambda: _find_api(api, spec.audience)),
        Target.GRANT: (
            f"management grant of {client_id}",
            lambda: _find_grant(api, client_id, spec.management_audience),
        ),
    }
    checks: list[Check] = []
    for target, (label, read) in readers.items():
        try:
            current = await read()
        except ManagementFailure as exc:
            reason = exc.upstream.describe() if exc.upstream else exc.description
            checks.append(
                Check(
                    f"{target.value} readable",
                    "fail",
                    f"cannot read the {label}: {reason}",
                    f"run `gateway provision --env {spec.env}` (grants the read scopes)",
                )
            )
            checks += _skipped(spec, target, "unreadable")
            continue
        if current is None:
            checks.append(
                Check(
                    f"{target.value} exists",
                    "fail",
                    f"no {label}",
                    f"run `gateway provision --env {spec.env}`",
                )
            )
            checks += _skipped(spec, target, "missing")
            continue
        for requirement in spec.requirements():
            if requirement.target is target:
                checks.append(_requirement_check(requirement, current, spec))
    return checks


def _requirement_check(requirement: Requirement, current: Json, spec: TenantSpec) -> Check:
    if requirement.name == "client name" and not spec.company:
        return Check(requirement.name, "skip", "no company known", "set GATEWAY_COMPANY")
    found = requirement.read(current)
    if requirement.holds(current):
        return Check(requirement.name, "ok", _show(found))
    if requirement.tolerated(current):
        extra = sorted(set(found) - set(requirement.desired))
        return Check(
            requirement.name,
            "warn",
            f"more than needed: {_show(extra)}",
            f"{requirement.hint}; it makes the list exact",
        )
    return Check(
        requirement.name,
        "fail",
        f"is {_show(found)}, want {_show(requirement.desired)}",
        requirement.hint,
    )


def _skipped(spec: TenantSpec, target: Target, why: str) -> list[Check]:
    return [Check(r.name, "skip", why) for r in spec.requirements() if r.target is target]


async def _find_client(api: ManagementClient, client_id: str) -> Json | None:
    try:
        return await api.get_client(client_id)
    except ManagementNotFound:
        return None


async def _find_api(api: ManagementClient, audience: str) -> Json | None:
    return next(
        (a for a in await api.list_resource_servers() if a.get("identifier") == audience), None
    )


async def _find_grant(api: ManagementClient, client_id: str, audience: str) -> Json | None:
    grants = await api.list_client_grants(client_id=client_id, audience=audience)
    return next(
        (g for g in grants if g.get("client_id") == client_id and g.get("audience") == audience),
        None,
    )


async def _probe(auth0: Auth0AuthClient, settings: Settings, probe: Probe) -> list[Check]:
    hint = (
        "check the probe user's password and that GATEWAY_AUTH0__CONNECTION is enabled for "
        "the client; then the grants and offline access (`gateway provision`)"
    )
    try:
        tokens = await auth0.password_login(
            probe.username, probe.password.get_secret_value(), forwarded_for=None
        )
    except GatewayError as exc:
        return [
            Check("probe login", "fail", f"{exc.code}: {exc.description}", hint),
            Check("probe token", "skip", "no login"),
            Check("probe refresh rotates", "skip", "no login"),
        ]
    refresh = tokens.refresh_token
    checks = [Check("probe login", "ok", "a password login returned a refresh token")]
    validator = TokenValidator(settings.auth0, JwksCache(auth0.fetch_jwks))
    try:
        claims = await validator.verify_jwt(tokens.access_token)
    except GatewayError as exc:
        checks.append(
            Check(
                "probe token",
                "fail",
                f"the access token does not validate: {exc.description}",
                "check GATEWAY_AUTH0__AUDIENCE and the API's RS256 signing",
            )
        )
    else:
        permissions = claims.get("permissions")
        if isinstance(permissions, list):
            checks.append(Check("probe token", "ok", f"valid, permissions {permissions}"))
        else:
            checks.append(
                Check(
                    "probe token",
                    "fail",
                    "valid but carries no permissions claim",
                    "turn on RBAC and 'Add Permissions in the Access Token' (`gateway provision`)",
                )
            )
    to_revoke = [refresh] if refresh is not None else []
    if refresh is not None:
        try:
            renewed = await auth0.refresh(refresh.get_secret_value())
        except GatewayError as exc:
            checks.append(
                Check("probe refresh rotates", "fail", f"{exc.code}: {exc.description}", hint)
            )
        else:
            new = renewed.refresh_token
            rotated = new is not None and new.get_secret_value() != refresh.get_secret_value()
            if new is not None:
                to_revoke.append(new)
            checks.append(
                Check("probe refresh rotates", "ok", "a new refresh token on refresh")
                if rotated
                else Check(
                    "probe refresh rotates",
                    "fail",
                    "the refresh token was not rotated",
                    "turn on refresh token rotation (`gateway provision`)",
                )
            )
    for token in to_revoke:
        # a failed revocation is nothing the operator must act on: the token expires by itself
        with contextlib.suppress(GatewayError):
            await auth0.revoke(token.get_secret_value())
    return checks


def _claims(token: str) -> dict[str, Any]:
    # the token came straight from the token endpoint; only its scope is read, for display
    try:
        payload = token.split(".")[1]
        decoded: Any = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
