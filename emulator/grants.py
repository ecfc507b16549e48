"""The grants of ``POST /oauth/token``: password, password-realm, refresh_token, client_credentials.

:func:`exchange` checks the request in Auth0's order as far as it is known (grant type, client,
grant enabled for the client, then the grant's own parameters) and raises :class:`OAuthError`
with the exact ``error`` / ``error_description`` of docs/emulator.md, "Errors of /oauth/token".
"""

from __future__ import annotations

import secrets
from typing import Any

from emulator.client_auth import (
    RATE_LIMITED,
    AuthenticatedClient,
    OAuthError,
    Params,
    authenticate_client,
    missing,
    unauthorized_client,
)
from emulator.state import (
    PASSWORD_REALM_GRANT,
    Client,
    RefreshToken,
    ResourceServer,
    Tenant,
    verify_password,
)
from emulator.tokens import (
    Issued,
    machine_permissions,
    token_response,
    user_permissions,
    user_scopes,
)

# grant_type -> the short name counted in ``GET /__emulator/stats``.
GRANT_NAMES = {
    "password": "password",
    PASSWORD_REALM_GRANT: "password-realm",
    "refresh_token": "refresh_token",
    "client_credentials": "client_credentials",
}
TOO_MANY_ATTEMPTS = (
    "Your account has been blocked after multiple consecutive login attempts. We've sent you a "
    "notification via your preferred contact method with instructions on how to unblock it."
)
SUSPICIOUS_IP = (
    "We have detected suspicious login behavior and further attempts will be blocked. Please "
    "contact the administrator."
)
PASSWORD_LEAKED = (
    "This login attempt has been blocked because the password you're using was previously "
    "disclosed through a data breach (not in this application). Please check your email for "
    "more information."
)
DELETED_USER = "The refresh_token was generated for a user who doesn't exist anymore."


def exchange(
    tenant: Tenant,
    params: Params,
    *,
    authorization: str | None,
    peer_ip: str,
    forwarded_for: str | None,
) -> dict[str, Any]:
    """Run one token request; the success body, or :class:`OAuthError`."""
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise missing("grant_type")
    short_name = GRANT_NAMES.get(grant_type)
    if short_name is None:
        raise OAuthError(400, "unsupported_grant_type", "Grant type not supported")
    caller = authenticate_client(tenant, authorization, params)
    if grant_type not in caller.client.grant_types:
        raise OAuthError(
            403,
            "unauthorized_client",
            f"Grant type '{grant_type}' not allowed for the client.",
            {"error_uri": "https://auth0.com/docs/clients/client-grant-types"},
        )
    if short_name == "client_credentials":
        body = _client_credentials(tenant, caller, params)
    elif short_name == "refresh_token":
        body = _refresh(tenant, caller.client, params)
    else:
        ip = _login_ip(caller, peer_ip, forwarded_for)
        body = _password(tenant, caller.client, params, ip, realm_grant=short_name != "password")
    tenant.count_grant(short_name)
    return body


def _login_ip(caller: AuthenticatedClient, peer_ip: str, forwarded_for: str | None) -> str:
    """The end user's IP: attack protection and the same-user login limit key on it.

    ``auth0-forwarded-for`` counts only for a client that trusts it and proved itself with its
    secret; otherwise the header is ignored and the TCP peer is the user.
    """
    trusted = caller.by_secret and caller.client.is_token_endpoint_ip_header_trusted
    if trusted and forwarded_for:
        return forwarded_for.split(",", 1)[0].strip()
    return peer_ip


def _api(tenant: Tenant, audience: str | None) -> ResourceServer | None:
    """The API a token is for; None (an opaque /userinfo token) when there is no audience."""
    audience = audience or tenant.settings.default_audience
    if audience is None:
        return None
    api = tenant.resource_servers.get(audience)
    if api is None:
        # The body pasted from /oauth/token in auth0/node-auth0#292 and
        # auth0/terraform-provider-auth0#951 (/authorize says "Service not found: ..."); the
        # 403 is UNCONFIRMED for this endpoint.
        raise OAuthError(403, "access_denied", f"Service not enabled within domain: {audience}")
    return api


def _password(
    tenant: Tenant, client: Client, params: Params, ip: str, *, realm_grant: bool
) -> dict[str, Any]:
    if realm_grant:
        connection = params.get("realm")
        if connection is None:
            raise missing("realm")
        if connection not in tenant.connections:
            # The documented text is /co/authenticate's; /oauth/token's is UNCONFIRMED.
            raise OAuthError(400, "invalid_request", f"Unknown realm {connection}.")
    else:
        # Plain ``password`` ignores ``realm`` (UNCONFIRMED whether Auth0 refuses it instead).
        connection = tenant.settings.default_directory
        if connection is None or connection not in tenant.connections:
            raise OAuthError(
                500, "server_error", "Authorization server not configured with default connection."
            )
    username = params.get("username")
    password = params.get("password")
    if username is None:
        raise missing("username")
    if password is None:
        raise missing("password")
    api = _api(tenant, params.get("audience"))

    now = tenant.now()
    if not tenant.suspicious_ip_limit.peek(ip, now):
        raise OAuthError(429, "too_many_attempts", SUSPICIOUS_IP)
    user = tenant.user_by_email(connection, username)
    if user is None:
        # Brute-force protection does not count these (the block is per existing account);
        # suspicious-IP throttling counts every failed login.
        tenant.suspicious_ip_limit.take(ip, now)
        raise _wrong_password()
    _same_user_limit(tenant, user.user_id, ip, now)
    key = (user.user_id, ip)
    if tenant.brute_force_blocked(user.user_id, ip):
        raise OAuthError(429, "too_many_attempts", TOO_MANY_ATTEMPTS)
    if not verify_password(user.password_hash, password):
        tenant.count_failed_login(user, ip, username.lower())
        tenant.suspicious_ip_limit.take(ip, now)
        raise _wrong_password()
    # A success resets brute-force protection's count but gives the suspicious-IP bucket
    # nothing back: Auth0 documents that bucket as failures a day, refilled with time only.
    tenant.failed_logins.pop(key, None)
    # Only a correct password reveals these (UNCONFIRMED order; Auth0 hides them otherwise).
    if user.blocked:
        raise OAuthError(401, "unauthorized", "user is blocked")
    if user.password_leaked:
        raise OAuthError(401, "password_leaked", PASSWORD_LEAKED)
    if user.mfa_required:
        raise OAuthError(
            403,
            "mfa_required",
            "Multifactor authentication required",
            {"mfa_token": "Fe26.2**" + secrets.token_urlsafe(32)},
        )
    user.last_login = tenant.now()
    user.logins_count += 1

    requested = params.get("scope", "").split()
    scopes = user_scopes(requested, api=api, user=user, client=client, password_exchange=True)
    refresh = None
    if "offline_access" in scopes:
        refresh = tenant.issue_refresh_token(
            client=client,
            user_id=user.user_id,
            audience=api.identifier if api else None,
            scope=" ".join(scopes),
        )
    issued = Issued(client, api, scopes, "password", user, user_permissions(api, user))
    return token_response(tenant, issued, refresh)


def _client_credentials(
    tenant: Tenant, caller: AuthenticatedClient, params: Params
) -> dict[str, Any]:
    if not caller.by_secret:
        raise unauthorized_client()
    audience = params.get("audience") or tenant.settings.default_audience
    if audience is None:
        # Text from memory of live tenants: UNCONFIRMED.
        raise OAuthError(
            403,
            "access_denied",
            "No audience parameter was provided, and no default audience has been configured",
        )
    api = _api(tenant, audience)
    grant = tenant.client_grant(caller.client.client_id, audience)
    if api is None or grant is None:
        raise OAuthError(
            403,
            "access_denied",
            f'Client is not authorized to access "{audience}". '
            'You need to create a "client-grant" associated to this API.',
        )
    requested = params.get("scope", "").split()
    not_granted = [s for s in requested if s not in grant.scope]
    if not_granted:
        # UNCONFIRMED text.
        raise OAuthError(
            403, "access_denied", f"Client has not been granted scopes: {', '.join(not_granted)}"
        )
    scopes = [s for s in grant.scope if s in requested] if requested else list(grant.scope)
    issued = Issued(
        caller.client, api, scopes, "client-credentials", None, machine_permissions(api, scopes)
    )
    return token_response(tenant, issued)


def _same_user_limit(tenant: Tenant, user_id: str, ip: str, now: float) -> None:
    """Spend one of the same-user login limit's tokens, right password or wrong, or answer 429.

    Auth0 calls it a rate limit, distinct from attack protection, so the answer is its rate
    limit's 429: the code ``too_many_requests`` (only in the OAS example, UNCONFIRMED for this
    limit) with the ``X-RateLimit-*`` headers (a live 429 of this limit showed
    ``X-RateLimit-Limit: 10``, issue jhipster/generator-jhipster#16127).
    """
    limit = tenant.same_user_login_limit
    allowed, remaining, reset = limit.take(f"{user_id} {ip}", now)
    if not allowed:
        headers = {
            "X-RateLimit-Limit": str(limit.per_minute),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
        }
        raise OAuthError(429, "too_many_requests", RATE_LIMITED, headers=headers)


def _wrong_password() -> OAuthError:
    return OAuthError(403, "invalid_grant", "Wrong email or password.")


def _invalid_refresh_token() -> OAuthError:
    return OAuthError(403, "invalid_grant", "Unknown or invalid refresh token.")


def _refresh(tenant: Tenant, client: Client, params: Params) -> dict[str, Any]:
    raw = params.get("refresh_token")
    if raw is None:
        raise missing("refresh_token")
    token = tenant.refresh_tokens.get(raw)
    if token is None or token.client_id != client.client_id:
        raise _invalid_refresh_token()
    user = tenant.users.get(token.user_id)
    if user is None:
        raise OAuthError(403, "invalid_grant", DELETED_USER)
    if token.revoked or tenant.refresh_token_expired(token):
        raise _invalid_refresh_token()
    if token.rotating and token.used_at is not None and not _within_leeway(tenant, token, client):
        # Reuse detection: the whole lineage dies, the newest token included.
        tenant.revoke_family(token.family_id)
        raise _invalid_refresh_token()
    if user.blocked:
        raise OAuthError(401, "unauthorized", "user is blocked")

    original = token.scope.split()
    requested = params.get("scope", "").split() or original
    if not set(requested) <= set(original):
        # Auth0 documents that scope may only narrow; the refusal's wording is UNCONFIRMED.
        raise OAuthError(
            403,
            "invalid_scope",
            "The requested scope exceeds the scope granted by the resource owner.",
        )
    api = _api(tenant, token.audience) if token.audience else None
    scopes = user_scopes(requested, api=api, user=user, client=client, password_exchange=False)
    rotated = _rotate(tenant, token, client)
    # gty of a refreshed token: "refresh_token" (UNCONFIRMED against keeping the original).
    issued = Issued(client, api, scopes, "refresh_token", user, user_permissions(api, user))
    return token_response(tenant, issued, rotated)


def _within_leeway(tenant: Tenant, token: RefreshToken, client: Client) -> bool:
    """Re-use of the immediately previous token inside ``refresh_token.leeway`` seconds."""
    leeway = float(client.refresh_token.get("leeway") or 0)
    if leeway <= 0 or token.used_at is None or tenant.now() - token.used_at > leeway:
        return False
    used = [t for t in tenant.family_of(token.family_id) if t.used_at is not None]
    return max(used, key=lambda t: t.used_at or 0.0) is token


def _rotate(tenant: Tenant, token: RefreshToken, client: Client) -> RefreshToken | None:
    """The refresh token to hand back: a successor when the client rotates, else none."""
    if not client.rotates_refresh_tokens:
        tenant.renew_refresh_token(token, client)
        return None
    if token.rotating:
        if token.used_at is None:  # a leeway re-use keeps the first use's time
            token.used_at = tenant.now()
        return tenant.issue_refresh_token(
            client=client,
            user_id=token.user_id,
            audience=token.audience,
            scope=token.scope,
            family_id=token.family_id,
            absolute_expiry=token.expires_at,
        )
    # Rotation was switched on after this token was issued: Auth0 swaps it for a rotating one
    # and deletes the client's non-rotating tokens for this user and API.
    for other in tenant.refresh_tokens.values():
        same_grant = (other.client_id, other.user_id, other.audience) == (
            token.client_id,
            token.user_id,
            token.audience,
        )
        if same_grant and not other.rotating:
            other.revoked = True
    return tenant.issue_refresh_token(
        client=client, user_id=token.user_id, audience=token.audience, scope=token.scope
    )
