"""Auth0's Authentication API: ``/oauth/token``, ``/userinfo``, ``/oauth/revoke``, discovery, JWKS.

Wire format per docs/emulator.md, "Auth0 wire facts it reproduces": form or JSON bodies,
``client_secret_post`` or ``client_secret_basic``, ``{"error", "error_description"}`` errors,
and the plain-text 401 of ``/userinfo`` with its reason in ``WWW-Authenticate``. The grants
live in :mod:`emulator.grants`, the tokens they mint in :mod:`emulator.tokens`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from emulator.client_auth import (
    NO_STORE,
    RATE_LIMITED,
    OAuthError,
    authenticate_client,
    missing,
    read_params,
)
from emulator.deps import TenantDep
from emulator.grants import exchange
from emulator.state import RefreshToken, Tenant
from emulator.tokens import profile_claims

router = APIRouter()


@router.post("/oauth/token")
async def post_token(request: Request, tenant: TenantDep) -> Response:
    """Exchange credentials for tokens."""
    try:
        params = await read_params(request)
        body = exchange(
            tenant,
            params,
            authorization=request.headers.get("authorization"),
            peer_ip=request.client.host if request.client else "",
            forwarded_for=request.headers.get("auth0-forwarded-for"),
        )
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


@router.api_route("/userinfo", methods=["GET", "POST"])
async def get_userinfo(request: Request, tenant: TenantDep) -> Response:
    """The profile of the access token's user, filtered by its scopes."""
    claims, reason = _access_token_claims(tenant, request.headers.get("authorization"))
    user = tenant.users.get(str(claims.get("sub"))) if claims else None
    if claims is None or user is None:
        return PlainTextResponse(
            "Unauthorized",
            status_code=401,
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="Users", error="invalid_token", error_description="{reason}"'
                )
            },
        )
    limit = tenant.userinfo_limit
    allowed, remaining, reset = limit.take(user.user_id, tenant.now())
    headers = {
        "X-RateLimit-Limit": str(limit.per_minute),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }
    if not allowed:
        # The code is only in the OAS example (UNCONFIRMED); the text is documented.
        body = {"error": "too_many_requests", "error_description": RATE_LIMITED}
        return JSONResponse(body, status_code=429, headers=headers)
    scopes = str(claims.get("scope", "")).split()
    return JSONResponse({"sub": user.user_id, **profile_claims(user, scopes)}, headers=headers)


def _access_token_claims(
    tenant: Tenant, authorization: str | None
) -> tuple[dict[str, Any] | None, str]:
    """The claims of a bearer token good at /userinfo, or None and the reason why not."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None, "Missing access token"
    if token.count(".") == 4:
        # An encrypted token issued without an audience: good at /userinfo only.
        claims = tenant.decrypt_userinfo_token(token)
        if claims is None:
            return None, "Invalid token"
        if claims.get("exp", 0) <= tenant.now():
            return None, "The token has expired"
        if "openid" not in str(claims.get("scope", "")).split():
            # UNCONFIRMED wording: Auth0 only documents that /userinfo needs ``openid``.
            return None, "The access token does not carry the openid scope"
        return claims, ""
    claims, reason = tenant.inspect_token(token, tenant.userinfo_audience)
    if claims is None:
        return None, "The token has expired" if reason == "expired" else "Invalid token"
    return claims, ""


@router.post("/oauth/revoke")
async def post_revoke(request: Request, tenant: TenantDep) -> Response:
    """Revoke a refresh token; 200 with an empty body even for unknown tokens (RFC 7009)."""
    try:
        params = await read_params(request)
        caller = authenticate_client(tenant, request.headers.get("authorization"), params)
        raw = params.get("token")
        if raw is None:
            raise missing("token")
    except OAuthError as exc:
        return exc.response()
    token = tenant.refresh_tokens.get(raw)
    # A token of another client is left alone, still with 200 (UNCONFIRMED what Auth0 answers).
    if token is not None and token.client_id == caller.client.client_id:
        _revoke(tenant, token)
    return Response(status_code=200)


def _revoke(tenant: Tenant, token: RefreshToken) -> None:
    """Revoke one token, or with ``flags.revoke_refresh_token_grant`` its whole grant."""
    if not tenant.settings.flags.get("revoke_refresh_token_grant", False):
        token.revoked = True
        return
    grant = (token.client_id, token.user_id, token.audience)
    for other in tenant.refresh_tokens.values():
        if (other.client_id, other.user_id, other.audience) == grant:
            other.revoked = True


@router.get("/.well-known/openid-configuration")
async def get_openid_configuration(tenant: TenantDep) -> dict[str, Any]:
    """The OIDC discovery document, shaped like a live tenant's."""
    base = tenant.issuer
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}authorize",
        "token_endpoint": f"{base}oauth/token",
        "device_authorization_endpoint": f"{base}oauth/device/code",
        "userinfo_endpoint": f"{base}userinfo",
        "mfa_challenge_endpoint": f"{base}mfa/challenge",
        "jwks_uri": f"{base}.well-known/jwks.json",
        "registration_endpoint": f"{base}oidc/register",
        "revocation_endpoint": f"{base}oauth/revoke",
        "scopes_supported": [
            "openid",
            "profile",
            "offline_access",
            "name",
            "given_name",
            "family_name",
            "nickname",
            "email",
            "email_verified",
            "picture",
            "created_at",
            "identities",
            "phone",
            "address",
        ],
        "response_types_supported": [
            "code",
            "token",
            "id_token",
            "code token",
            "code id_token",
            "token id_token",
            "code token id_token",
        ],
        "code_challenge_methods_supported": ["S256", "plain"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        # Only the methods the emulator implements (a live tenant adds private_key_jwt, the
        # mTLS methods and token_endpoint_auth_signing_alg_values_supported for them).
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": [
            "aud",
            "auth_time",
            "created_at",
            "email",
            "email_verified",
            "exp",
            "family_name",
            "given_name",
            "iat",
            "identities",
            "iss",
            "name",
            "nickname",
            "phone_number",
            "picture",
            "sub",
        ],
        "request_uri_parameter_supported": False,
        "request_parameter_supported": True,
        "id_token_signing_alg_values_supported": ["HS256", "RS256", "PS256"],
        # A live tenant then says tls_client_certificate_bound_access_tokens: the emulator
        # binds no token to a client certificate, so it leaves that out (and DPoP's list).
        "request_object_signing_alg_values_supported": ["RS256", "RS384", "PS256"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "end_session_endpoint": f"{base}oidc/logout",
        "backchannel_authentication_endpoint": f"{base}bc-authorize",
        "backchannel_token_delivery_modes_supported": ["poll"],
        "global_token_revocation_endpoint": (
            f"{base}oauth/global-token-revocation/connection/{{connectionName}}"
        ),
        "global_token_revocation_endpoint_auth_methods_supported": ["global-token-revocation+jwt"],
    }


@router.get("/.well-known/jwks.json")
async def get_jwks(tenant: TenantDep) -> dict[str, Any]:
    """Every published signing key (the current one first)."""
    return tenant.jwks()
