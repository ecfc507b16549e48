"""The desired state of one environment's Auth0 tenant, as data.

What the gateway relies on (docs/tenant.md says why):

- tenant: default directory ``Username-Password-Authentication`` (plain ``password`` grants
  need it); "Refresh Token Revocation Deletes Grant" off, so a logout or a password change
  ends only the sessions it means to;
- client ``<company>-<env>``: ``client_secret_post``, exactly the grants ``password``,
  password-realm, ``refresh_token`` and ``client_credentials``, first-party and OIDC
  conformant, "Trust Token Endpoint IP Header" on, rotating, expiring refresh tokens;
- API (the audience): RS256, RBAC, permissions in the token, offline access, consent skipped
  for first-party clients, and the eight permissions;
- the client authorized for the Management API with user CRUD, plus read-only scopes on the
  tenant's configuration so ``gateway doctor`` can check it with the gateway's own credentials
  (Auth0 returns client secrets only with ``read:client_keys``, which is not granted).

Each :class:`Requirement` names one check: provisioning enforces it (its ``fix`` is the PATCH
fragment), the doctor prints it as one line with its ``hint``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.clients.auth0 import GRANT_PASSWORD_REALM

Json = dict[str, Any]

PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("read:venues", "Read venues"),
    ("create:venues", "Create venues"),
    ("update:venues", "Update venues"),
    ("delete:venues", "Delete venues"),
    ("read:users", "Read users"),
    ("create:users", "Create users"),
    ("update:users", "Update users"),
    ("delete:users", "Delete users"),
)
GRANT_TYPES: tuple[str, ...] = (
    "password",
    GRANT_PASSWORD_REALM,
    "refresh_token",
    "client_credentials",
)
USER_SCOPES: tuple[str, ...] = ("read:users", "create:users", "update:users", "delete:users")
DOCTOR_SCOPES: tuple[str, ...] = (
    "read:tenant_settings",
    "read:clients",
    "read:client_grants",
    "read:resource_servers",
)
#: The refresh-token policy: rotating, 30 days absolute, 15 days idle.
REFRESH_TOKEN_POLICY: Mapping[str, Any] = {
    "rotation_type": "rotating",
    "expiration_type": "expiring",
    "token_lifetime": 2_592_000,
    "infinite_token_lifetime": False,
    "idle_token_lifetime": 1_296_000,
    "infinite_idle_token_lifetime": False,
    "leeway": 0,
}
_PROVISION = "run `gateway provision --env {env}`"


class Target(StrEnum):
    """The tenant object a requirement is about."""

    TENANT = "tenant settings"
    CLIENT = "client"
    API = "API"
    GRANT = "management grant"


def _equal(current: Any, desired: Any) -> bool:
    return bool(current == desired)


@dataclass(frozen=True)
class Requirement:
    """One thing the tenant must have: read it, compare it, fix it."""

    name: str
    target: Target
    read: Callable[[Json], Any]
    desired: Any
    fix: Callable[[Json], Json]
    hint: str
    matches: Callable[[Any, Any], bool] = field(default=_equal)
    acceptable: Callable[[Any, Any], bool] | None = None

    def holds(self, current: Json) -> bool:
        """True when ``current`` (the object as Auth0 returns it) is as provisioning makes it."""
        return self.matches(self.read(current), self.desired)

    def tolerated(self, current: Json) -> bool:
        """True when ``current`` is good enough to work (the doctor warns instead of failing).

        Lists are provisioned exactly (least privilege), but more than needed still works.
        """
        accept = self.acceptable or self.matches
        return accept(self.read(current), self.desired)


def _superset(current: Any, desired: Any) -> bool:
    return set(desired) <= set(current)


@dataclass(frozen=True)
class TenantSpec:
    """One environment's tenant as it must be."""

    company: str
    env: str
    base_url: str
    audience: str
    connection: str

    @property
    def client_name(self) -> str:
        """``<company>-<env>``."""
        return f"{self.company}-{self.env}"

    @property
    def api_name(self) -> str:
        """The API's display name (set on creation only)."""
        return f"{self.company}-{self.env} venue API"

    @property
    def management_audience(self) -> str:
        """``<tenant>/api/v2/``."""
        return f"{self.base_url}/api/v2/"

    @property
    def management_scopes(self) -> tuple[str, ...]:
        """What the gateway's client gets on the Management API."""
        return USER_SCOPES + DOCTOR_SCOPES

    def describe(self) -> list[str]:
        """The desired state, one line each, for printing."""
        permissions = ", ".join(name for name, _ in PERMISSIONS)
        return [
            f"tenant     {self.base_url} (env {self.env})",
            f"settings   default_directory={self.connection}, "
            "flags.revoke_refresh_token_grant=false",
            f"client     {self.client_name}: client_secret_post, grants "
            f"{', '.join(GRANT_TYPES)}; trusted IP header; rotating refresh tokens",
            f"API        {self.audience}: RS256, RBAC, permissions in token, offline access; "
            f"{permissions}",
            f"grant      {self.client_name} -> {self.management_audience}: "
            f"{' '.join(self.management_scopes)}",
        ]

    def requirements(self) -> list[Requirement]:
        """Every requirement, in the order provisioning applies and the doctor prints them."""
        return [*self._tenant(), *self._client(), *self._api(), *self._grant()]

    def client_create_body(self) -> Json:
        """``POST /clients`` for a new ``<company>-<env>``."""
        body: Json = {"name": self.client_name, "app_type": "regular_web"}
        for requirement in self._client():
            body.update(requirement.fix({}))
        return body

    def api_create_body(self) -> Json:
        """``POST /resource-servers`` for the audience."""
        body: Json = {"identifier": self.audience, "name": self.api_name}
        for requirement in self._api():
            body.update(requirement.fix({}))
        return body

    def _hint(self, what: str) -> str:
        return f"{_PROVISION.format(env=self.env)} ({what})"

    def _tenant(self) -> list[Requirement]:
        return [
            Requirement(
                "default directory",
                Target.TENANT,
                lambda s: s.get("default_directory"),
                self.connection,
                lambda _: {"default_directory": self.connection},
                self._hint("Settings > General > API Authorization Settings > Default Directory"),
            ),
            Requirement(
                "revocation keeps other sessions",
                Target.TENANT,
                lambda s: bool(s.get("flags", {}).get("revoke_refresh_token_grant", False)),
                False,
                lambda _: {"flags": {"revoke_refresh_token_grant": False}},
                self._hint("turn off Settings > Advanced > Refresh Token Revocation Deletes Grant"),
            ),
        ]

    def _client(self) -> list[Requirement]:
        return [
            Requirement(
                "client name",
                Target.CLIENT,
                lambda c: c.get("name"),
                self.client_name,
                lambda _: {"name": self.client_name},
                "set GATEWAY_AUTH0__CLIENT_ID to the client `gateway provision` reports",
            ),
            Requirement(
                "client auth method Post",
                Target.CLIENT,
                lambda c: c.get("token_endpoint_auth_method"),
                "client_secret_post",
                lambda _: {"token_endpoint_auth_method": "client_secret_post"},
                self._hint(
                    "Application > Credentials > Authentication Method: Client Secret (Post)"
                ),
            ),
            Requirement(
                "client grant types",
                Target.CLIENT,
                lambda c: sorted(c.get("grant_types") or []),
                sorted(GRANT_TYPES),
                lambda _: {"grant_types": list(GRANT_TYPES)},
                self._hint(
                    "Application > Advanced > Grant Types: exactly Password, "
                    "Refresh Token, Client Credentials"
                ),
                acceptable=_superset,
            ),
            Requirement(
                "first-party OIDC client",
                Target.CLIENT,
                lambda c: (c.get("is_first_party"), c.get("oidc_conformant")),
                (True, True),
                lambda _: {"is_first_party": True, "oidc_conformant": True},
                self._hint("Application > Advanced > OAuth: OIDC Conformant, first party"),
            ),
            Requirement(
                "trusted IP header",
                Target.CLIENT,
                lambda c: c.get("is_token_endpoint_ip_header_trusted"),
                True,
                lambda _: {"is_token_endpoint_ip_header_trusted": True},
                self._hint("Application > Advanced > OAuth: Trust Token Endpoint IP Header"),
            ),
            Requirement(
                "rotating refresh tokens",
                Target.CLIENT,
                lambda c: {k: (c.get("refresh_token") or {}).get(k) for k in REFRESH_TOKEN_POLICY},
                dict(REFRESH_TOKEN_POLICY),
                lambda _: {"refresh_token": dict(REFRESH_TOKEN_POLICY)},
                self._hint("Application > Settings > Refresh Token Rotation on, expiring"),
            ),
        ]

    def _api(self) -> list[Requirement]:
        wanted = [name for name, _ in PERMISSIONS]

        def add_missing(api: Json) -> Json:
            scopes = [dict(s) for s in api.get("scopes") or []]
            have = {s.get("value") for s in scopes}
            scopes += [{"value": n, "description": d} for n, d in PERMISSIONS if n not in have]
            return {"scopes": scopes}

        return [
            Requirement(
                "API signs RS256",
                Target.API,
                lambda a: a.get("signing_alg"),
                "RS256",
                lambda _: {"signing_alg": "RS256"},
                self._hint("APIs > the API > Settings > Signing Algorithm RS256"),
            ),
            Requirement(
                "API RBAC",
                Target.API,
                lambda a: a.get("enforce_policies"),
                True,
                lambda _: {"enforce_policies": True},
                self._hint("APIs > the API > RBAC Settings > Enable RBAC"),
            ),
            Requirement(
                "API permissions in token",
                Target.API,
                lambda a: a.get("token_dialect"),
                "access_token_authz",
                lambda _: {"token_dialect": "access_token_authz"},
                self._hint("APIs > the API > RBAC Settings > Add Permissions in the Access Token"),
            ),
            Requirement(
                "API offline access",
                Target.API,
                lambda a: a.get("allow_offline_access"),
                True,
                lambda _: {"allow_offline_access": True},
                self._hint("APIs > the API > Access Settings > Allow Offline Access"),
            ),
            Requirement(
                "API skips first-party consent",
                Target.API,
                lambda a: a.get("skip_consent_for_verifiable_first_party_clients"),
                True,
                lambda _: {"skip_consent_for_verifiable_first_party_clients": True},
                self._hint("APIs > the API > Access Settings > Allow Skipping User Consent"),
            ),
            Requirement(
                "API permissions",
                Target.API,
                lambda a: sorted(str(s.get("value")) for s in a.get("scopes") or []),
                sorted(wanted),
                add_missing,
                self._hint("APIs > the API > Permissions: the eight venue and user permissions"),
                matches=_superset,  # other teams' permissions on the API are theirs to keep
            ),
        ]

    def _grant(self) -> list[Requirement]:
        return [
            Requirement(
                "management grant scopes",
                Target.GRANT,
                lambda g: sorted(g.get("scope") or []),
                sorted(self.management_scopes),
                lambda _: {"scope": list(self.management_scopes)},
                self._hint("APIs > Auth0 Management API > Machine to Machine Applications"),
                acceptable=_superset,
            ),
        ]
