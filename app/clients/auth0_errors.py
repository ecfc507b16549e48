"""Authentication API errors: Auth0's error answers, and the gateway errors they become.

Auth0 answers the Authentication API's errors as ``{"error", "error_description"}`` (some SDK
paths say ``code`` / ``description``), and ``/userinfo`` as a plain-text ``Unauthorized`` with
the reason in ``WWW-Authenticate``. Its statuses differ from its own OpenAPI file, so
:func:`error_for` keys on ``error`` plus ``error_description`` and falls back on the status
only last (the answers and their sources: docs/emulator.md, "Errors of /oauth/token"):

- the user's fault: wrong password -> :class:`InvalidCredentials`; blocked, MFA, a leaked
  password or a Rule/Action's denial -> :class:`Forbidden` (403); a bad access token on
  ``/userinfo`` -> :class:`Unauthorized` (401); a dead refresh token -> :class:`RefreshRejected`
- attack protection and Auth0's rate limit -> :class:`RateLimited` (429 with ``Retry-After``)
- a tenant that refuses the gateway itself -> :class:`UpstreamMisconfigured` (502) plus a
  loud log line naming the likely fix
- 5xx or no JSON error body -> :class:`UpstreamUnavailable` (503 with ``Retry-After``)

Descriptions are scrubbed of the values the request sent before they are logged or shown.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any

import httpx

from app.clients.rate_limits import requested_wait_s
from app.http.errors import (
    Forbidden,
    GatewayError,
    InvalidCredentials,
    RateLimited,
    RefreshRejected,
    Unauthorized,
    UpstreamMisconfigured,
    UpstreamUnavailable,
)

# The client's logger: these lines keep the name they had when the mapping lived in the client.
log = logging.getLogger("app.clients.auth0")

#: Upper bound for any ``Retry-After`` the gateway derives from Auth0's headers.
MAX_RETRY_AFTER_S = 600
#: ``Retry-After`` when Auth0 rate-limits or blocks without saying for how long.
DEFAULT_RATE_LIMIT_RETRY_S = 60
#: ``Retry-After`` when Auth0 is down, slow or answering garbage.
DEFAULT_UNAVAILABLE_RETRY_S = 5

_MAX_DESCRIPTION = 300

#: The stable, token-free descriptions of a rejected access token.
MSG_INVALID = "The access token is invalid."
MSG_EXPIRED = "The access token has expired."
#: What a 429 says: Auth0 rate-limits logins of one account, or the gateway itself.
MSG_LOGIN_RATE_LIMITED = "Too many login attempts for this account; try again later."
MSG_GATEWAY_RATE_LIMITED = "The identity provider is rate limiting the gateway; try again later."
#: ``too_many_attempts`` when Auth0 gives no text of its own.
MSG_TOO_MANY_ATTEMPTS = "Too many failed login attempts; this account is blocked."
#: Auth0's own texts of ``too_many_attempts``, passed on as they are: brute-force protection
#: (this user from this IP) and suspicious-IP throttling (this IP, every account).
AUTH0_BRUTE_FORCE = (
    "Your account has been blocked after multiple consecutive login attempts. We've sent you a "
    "notification via your preferred contact method with instructions on how to unblock it."
)
AUTH0_SUSPICIOUS_IP = (
    "We have detected suspicious login behavior and further attempts will be blocked. Please "
    "contact the administrator."
)


class Endpoint(StrEnum):
    """The Auth0 calls the client makes; the mapping keys on them, their values label logs."""

    LOGIN = "oauth_token_password_realm"
    REFRESH = "oauth_token_refresh_token"
    CLIENT_CREDENTIALS = "oauth_token_client_credentials"
    REVOKE = "oauth_revoke"
    USERINFO = "userinfo"
    JWKS = "jwks"


def error_for(
    endpoint: Endpoint,
    response: httpx.Response,
    secrets: Iterable[str],
    *,
    wall_clock: Callable[[], float],
) -> GatewayError:
    """The gateway error for Auth0's error answer to ``endpoint``.

    ``secrets`` are the values the request sent, never to appear in a log line or an error;
    ``wall_clock`` gives Unix seconds, for ``X-RateLimit-Reset`` (epoch seconds).
    """
    status = response.status_code
    body = json_object(response)
    error, description = error_fields(body)
    description = scrub(description, secrets)
    lowered = description.lower()

    if endpoint is Endpoint.USERINFO and status in (401, 403):
        # a plain-text "Unauthorized" body, the reason in WWW-Authenticate
        challenge = response.headers.get("WWW-Authenticate", "").lower()
        if "expired" in challenge or "expired" in lowered:
            return Unauthorized(MSG_EXPIRED)
        return Unauthorized(MSG_INVALID)

    if error == "too_many_attempts":
        # brute-force protection or suspicious-IP throttling; Auth0's text tells
        # the user which one and what to do
        log.info("Auth0 %s: too_many_attempts (attack protection)", endpoint)
        return RateLimited(
            description or MSG_TOO_MANY_ATTEMPTS,
            code="too_many_attempts",
            retry_after=retry_after_s(response, DEFAULT_RATE_LIMIT_RETRY_S, wall_clock),
        )
    if status == 429:
        retry_after = retry_after_s(response, DEFAULT_RATE_LIMIT_RETRY_S, wall_clock)
        log.warning("Auth0 rate-limits %s; retry after %ss", endpoint, retry_after)
        if endpoint is Endpoint.LOGIN:
            # on a login this is most likely Auth0's same-user login limit (20 a minute
            # per account and IP, then 10), the caller's doing rather than the gateway's
            return RateLimited(MSG_LOGIN_RATE_LIMITED, retry_after=retry_after)
        return RateLimited(MSG_GATEWAY_RATE_LIMITED, retry_after=retry_after)
    if error == "mfa_required":
        return Forbidden(
            "This account requires multifactor authentication, which this login does not support.",
            code="mfa_required",
        )
    if error == "password_leaked":
        return Forbidden(
            "This login was blocked because the password appeared in a data breach; check "
            "your email for instructions.",
            code="password_leaked",
        )
    if error == "blocked_user" or (error == "unauthorized" and "blocked" in lowered):
        return Forbidden("This account is blocked.", code="user_blocked")
    if error in ("invalid_grant", "invalid_user_password"):
        if endpoint is Endpoint.LOGIN:
            # 403 "Wrong email or password." live; the legacy 401
            # invalid_user_password is accepted as the mobile SDKs do
            return InvalidCredentials()
        if endpoint in (Endpoint.REFRESH, Endpoint.REVOKE) and error == "invalid_grant":
            log.info("Auth0 rejected a refresh token on %s: %s", endpoint, description)
            return RefreshRejected()
    if error == "access_denied":
        if status == 401:
            # a bad client secret is 401 access_denied "Unauthorized" live (not the OAS's 401
            # invalid_client)
            return misconfigured(
                endpoint,
                "check GATEWAY_AUTH0__CLIENT_ID / GATEWAY_AUTH0__CLIENT_SECRET against the "
                "application, whose Token Endpoint Authentication Method must be Post",
                status=status,
                error=error,
                description=description,
            )
        if (
            endpoint is Endpoint.CLIENT_CREDENTIALS
            or "client-grant" in lowered
            or lowered.startswith("service not found")
        ):
            # no client grant for the audience, or an unknown audience
            return misconfigured(
                endpoint,
                "authorize the application for the audience (create a client grant) and "
                "check GATEWAY_AUTH0__AUDIENCE names an existing API",
                status=status,
                error=error,
                description=description,
            )
        # a Rule or Action denied the login; its text is meant for the user
        return Forbidden(description or None, code="access_denied")
    hint = _MISCONFIGURATION_HINTS.get(error or "")
    if error == "server_error" and "default connection" in lowered:
        hint = (
            "set Tenant Settings > Default Directory (e.g. Username-Password-Authentication), "
            "docs/tenant.md"
        )
    if hint is not None:
        return misconfigured(endpoint, hint, status=status, error=error, description=description)
    if status >= 500 or body is None:
        log.warning("Auth0 %s answered %s %s", endpoint, status, error or "with no JSON error body")
        return UpstreamUnavailable(
            retry_after=retry_after_s(response, DEFAULT_UNAVAILABLE_RETRY_S, wall_clock)
        )
    return misconfigured(
        endpoint,
        "an error the gateway does not expect; see the tenant's logs in the Auth0 dashboard",
        status=status,
        error=error,
        description=description,
    )


def misconfigured(
    endpoint: Endpoint,
    hint: str,
    *,
    status: int | None = None,
    error: str | None = None,
    description: str = "",
) -> UpstreamMisconfigured:
    """The 502 for a tenant that refuses the gateway, after the loud log line with ``hint``.

    Without ``status`` the gateway found the problem itself, before or after asking Auth0.
    """
    if status is None:
        log.error("AUTH0 TENANT MISCONFIGURED on %s. Likely fix: %s", endpoint, hint)
    else:
        log.error(
            "AUTH0 TENANT MISCONFIGURED: %s answered %s %s (%s). Likely fix: %s",
            endpoint,
            status,
            error or "with no error code",
            description or "no description",
            hint,
        )
    return UpstreamMisconfigured()


def retry_after_s(response: httpx.Response, default: int, wall_clock: Callable[[], float]) -> int:
    """Seconds to wait, from ``Retry-After`` or ``X-RateLimit-Reset`` (epoch seconds).

    Bounded to 1..``MAX_RETRY_AFTER_S`` so a skewed clock or a silly header never
    tells clients to go away for a day.
    """
    seconds = requested_wait_s(response.headers, wall_clock())
    if seconds is None:
        seconds = default
    return max(1, min(MAX_RETRY_AFTER_S, math.ceil(seconds)))


_MISCONFIGURATION_HINTS: dict[str, str] = {
    "unauthorized_client": (
        "enable the grant type named in the message on the application (Advanced > Grant "
        "Types); password-realm is a separate entry from password; see docs/tenant.md"
    ),
    "invalid_client": (
        "check GATEWAY_AUTH0__CLIENT_ID / GATEWAY_AUTH0__CLIENT_SECRET and that the "
        "application authenticates with Post (client_secret_post)"
    ),
    "unsupported_grant_type": "the tenant does not support this grant; check the Auth0 domain",
    "invalid_request": (
        "check GATEWAY_AUTH0__CONNECTION (the realm), GATEWAY_AUTH0__AUDIENCE and "
        "GATEWAY_AUTH0__SCOPE"
    ),
    "invalid_scope": "check GATEWAY_AUTH0__SCOPE against the API's scopes",
    "consent_required": "mark the application first-party or allow skipping consent for the API",
}


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None for anything else (plain text, HTML, garbage)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def error_fields(body: Mapping[str, Any] | None) -> tuple[str | None, str]:
    """``error`` and ``error_description``, with the SDKs' fallback to ``code``/``description``."""
    if body is None:
        return None, ""
    error = body.get("error", body.get("code"))
    description = body.get("error_description", body.get("description"))
    return (
        error if isinstance(error, str) else None,
        description[:_MAX_DESCRIPTION] if isinstance(description, str) else "",
    )


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every sensitive value replaced, and no control characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return "".join(ch if ch.isprintable() else " " for ch in text)
