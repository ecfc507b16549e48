"""Minting what ``/oauth/token`` answers: scopes, access tokens (JWT or encrypted), ID tokens.

Access-token claims follow the API's ``token_dialect``. The Auth0 profile (``access_token``,
``access_token_authz``): ``iss`` (the issuer with its trailing slash), ``sub``, ``aud`` (a string,
or ``[api, "<issuer>userinfo"]`` when ``openid`` is granted and the API signs with RS256),
``iat``, ``exp``, ``scope``, ``gty``, ``azp``. The RFC 9068 profile (``rfc9068_profile``,
``rfc9068_profile_authz``): header ``typ: at+jwt``, ``client_id`` instead of ``azp``, a ``jti``,
no ``gty``. The ``*_authz`` dialects of RBAC APIs add ``permissions``. The token is signed as
the API's ``signing_alg`` says. Without an audience the token is an encrypted JWE that only
``/userinfo`` reads.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emulator.state import Client, RefreshToken, ResourceServer, Tenant, User, iso_utc

# The OIDC scopes Auth0 understands, in the order the emulator writes them in ``scope``.
OIDC_SCOPES = ("openid", "profile", "email", "address", "phone", "offline_access")
# Auth0 documents no lifetime for an opaque ROPG token (UNCONFIRMED); the code-flow one is used.
OPAQUE_TOKEN_LIFETIME = 86400
_AUTHZ_DIALECTS = {"access_token_authz", "rfc9068_profile_authz"}
_RFC9068_DIALECTS = {"rfc9068_profile", "rfc9068_profile_authz"}
# What ``openid`` alone brings in a password exchange: every OIDC standard scope.
_STANDARD_OIDC_SCOPES = {"profile", "email", "address", "phone"}


@dataclass(frozen=True)
class Issued:
    """What one grant gives: who, for which API, with which scopes."""

    client: Client
    api: ResourceServer | None  # None: an opaque token good only at /userinfo
    scopes: list[str]
    gty: str
    user: User | None = None  # None for client credentials
    permissions: list[str] | None = None  # the ``permissions`` claim, when the API adds one

    @property
    def subject(self) -> str:
        """``auth0|...`` for a user, ``<client_id>@clients`` for a machine."""
        return self.user.user_id if self.user else f"{self.client.client_id}@clients"


def user_scopes(
    requested: Sequence[str],
    *,
    api: ResourceServer | None,
    user: User,
    client: Client,
    password_exchange: bool,
) -> list[str]:
    """The scopes a user token gets.

    A password exchange that asks for no API scope gets all of them ("any password-based
    exchange gives access to all scopes"), and ``openid`` alone brings the standard OIDC scopes
    (``openid profile email address phone``).
    With RBAC (``enforce_policies``) API scopes are cut down to the user's permissions.
    ``offline_access`` survives only when a refresh token can be issued.
    """
    wanted = set(requested)
    if password_exchange and wanted & set(OIDC_SCOPES[:5]) == {"openid"}:
        wanted |= _STANDARD_OIDC_SCOPES
    refresh_allowed = "refresh_token" in client.grant_types and (
        api is None or api.allow_offline_access
    )
    if not refresh_allowed:
        wanted.discard("offline_access")
    oidc = [s for s in OIDC_SCOPES if s in wanted]
    if api is None:
        return oidc
    api_scopes = [s for s in api.scope_values if s in wanted]
    if not api_scopes and password_exchange:
        api_scopes = api.scope_values
    if api.enforce_policies:
        allowed = set(user.permissions_for(api.identifier))
        api_scopes = [s for s in api_scopes if s in allowed]
    return oidc + api_scopes


def user_permissions(api: ResourceServer | None, user: User) -> list[str] | None:
    """The ``permissions`` claim: every permission the user holds on an RBAC API."""
    if api is None or not api.enforce_policies or api.token_dialect not in _AUTHZ_DIALECTS:
        return None
    return user.permissions_for(api.identifier)


def machine_permissions(api: ResourceServer, scopes: list[str]) -> list[str] | None:
    """The ``permissions`` claim of a client-credentials token: its granted scopes."""
    if not api.enforce_policies or api.token_dialect not in _AUTHZ_DIALECTS:
        return None
    return scopes


def profile_claims(user: User, scopes: Sequence[str]) -> dict[str, Any]:
    """The user's OIDC claims that ``scopes`` release (``sub`` is the caller's business)."""
    claims: dict[str, Any] = {}
    if "profile" in scopes:
        for name in ("given_name", "family_name", "nickname", "name", "picture"):
            value = getattr(user, name)
            if value is not None:
                claims[name] = value
        claims["updated_at"] = iso_utc(user.updated_at)
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    if "phone" in scopes and user.phone_number is not None:
        claims["phone_number"] = user.phone_number
    return claims


def token_response(
    tenant: Tenant, issued: Issued, refresh_token: RefreshToken | None = None
) -> dict[str, Any]:
    """The JSON body of a successful ``/oauth/token`` call."""
    now = int(tenant.now())
    scope = " ".join(issued.scopes)
    if issued.api is None:
        lifetime = OPAQUE_TOKEN_LIFETIME
        access_token = tenant.encrypt_userinfo_token(
            {
                "iss": tenant.issuer,
                "sub": issued.subject,
                "aud": tenant.userinfo_audience,
                "azp": issued.client.client_id,
                "scope": scope,
                "iat": now,
                "exp": now + lifetime,
            }
        )
    else:
        api = issued.api
        lifetime = api.token_lifetime
        access_token = tenant.sign(
            _access_claims(tenant, issued, api, now, lifetime),
            algorithm=api.signing_alg,
            secret=api.signing_secret if api.signing_alg == "HS256" else None,
            typ="at+jwt" if api.token_dialect in _RFC9068_DIALECTS else "JWT",
        )
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": scope,
    }
    if issued.user is not None and "openid" in issued.scopes:
        body["id_token"] = _id_token(tenant, issued, issued.user, now)
    if refresh_token is not None:
        body["refresh_token"] = refresh_token.token
    return body


def _access_claims(
    tenant: Tenant, issued: Issued, api: ResourceServer, now: int, lifetime: int
) -> dict[str, Any]:
    audience: str | list[str] = api.identifier
    # "Your access tokens can have two or more audiences only if your custom API is signed with
    # RS256" (docs secure/tokens/access-tokens/get-access-tokens).
    if issued.user is not None and "openid" in issued.scopes and api.signing_alg == "RS256":
        audience = [api.identifier, tenant.userinfo_audience]
    claims: dict[str, Any]
    if api.token_dialect in _RFC9068_DIALECTS:
        claims = {
            "iss": tenant.issuer,
            "sub": issued.subject,
            "aud": audience,
            "client_id": issued.client.client_id,
            "exp": now + lifetime,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(issued.scopes),
        }
    else:
        claims = {
            "iss": tenant.issuer,
            "sub": issued.subject,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "scope": " ".join(issued.scopes),
            "gty": issued.gty,
            "azp": issued.client.client_id,
        }
    if issued.permissions is not None:
        claims["permissions"] = issued.permissions
    return claims


def _id_token(tenant: Tenant, issued: Issued, user: User, now: int) -> str:
    lifetime = int(issued.client.jwt_configuration.get("lifetime_in_seconds", 36000))
    claims: dict[str, Any] = {
        **profile_claims(user, issued.scopes),
        "iss": tenant.issuer,
        "aud": issued.client.client_id,
        "sub": user.user_id,
        "iat": now,
        "exp": now + lifetime,
    }
    return tenant.sign(claims)
