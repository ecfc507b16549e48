"""A typed client for the Auth0 Authentication API (``reference/auth0-wire.md`` §1-§6).

Every call goes through one injected, shared :class:`httpx.AsyncClient` with
``settings.timeout_s``, and every failure leaves this module as an error of
:mod:`app.http.errors`: the user's fault (wrong password, blocked, MFA) as 401/403, Auth0
throttling as 429, a tenant that refuses the gateway itself as 502 plus a loud log line,
and anything upstream being down or answering garbage as 503 with ``Retry-After``.

Requests to ``/oauth/token`` and ``/oauth/revoke`` are ``application/x-www-form-urlencoded``:
RFC 6749 §4.3.2 mandates form bodies for the token endpoint, Auth0 accepts both form and JSON
(§1.1), and form is what every OAuth server, the emulator included, must understand.
Client authentication is ``client_secret_post`` (the secret in the body, §1.1).

Nothing here logs a token, password or secret: error descriptions from Auth0 are scrubbed
of the values sent, transport errors are logged by type and message (the request URLs carry
no credentials), and malformed success bodies are reported by field location only.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

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
from settings.model import Auth0Settings

log = logging.getLogger(__name__)

GRANT_PASSWORD_REALM = "http://auth0.com/oauth/grant-type/password-realm"  # noqa: S105 - a grant name

#: Upper bound for any ``Retry-After`` the gateway derives from Auth0's headers.
MAX_RETRY_AFTER_S = 600
#: ``Retry-After`` when Auth0 rate-limits or blocks without saying for how long.
DEFAULT_RATE_LIMIT_RETRY_S = 60
#: ``Retry-After`` when Auth0 is down, slow or answering garbage.
DEFAULT_UNAVAILABLE_RETRY_S = 5

#: ``on_call(endpoint, outcome, seconds)``: outcome is ``"ok"`` or the error code answered.
CallObserver = Callable[[str, str, float], None]

_T = TypeVar("_T")

_MAX_DESCRIPTION = 300

#: The stable, token-free descriptions of a rejected access token.
MSG_INVALID = "The access token is invalid."
MSG_EXPIRED = "The access token has expired."


class Endpoint(StrEnum):
    """The Auth0 calls this client makes; the values label logs and metrics."""

    LOGIN = "oauth_token_password_realm"
    REFRESH = "oauth_token_refresh_token"
    CLIENT_CREDENTIALS = "oauth_token_client_credentials"
    REVOKE = "oauth_revoke"
    USERINFO = "userinfo"
    JWKS = "jwks"


class TokenSet(BaseModel):
    """A successful ``/oauth/token`` answer (§1.6); its ``repr`` shows no token."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    access_token: str = Field(min_length=1, repr=False)
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a credential
    expires_in: int = Field(ge=0)
    scope: str | None = None
    refresh_token: SecretStr | None = Field(
        default=None,
        description="Present on login with offline access; on refresh only when rotation is on.",
    )
    id_token: SecretStr | None = None


class _Misconfigured(Exception):
    """Internal: carries the hint for the loud log line before it becomes a 502."""


def _noop_observer(endpoint: str, outcome: str, seconds: float) -> None:
    del endpoint, outcome, seconds


class Auth0AuthClient:
    """Auth0 Authentication API calls over an injected shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Auth0Settings,
        *,
        on_call: CallObserver | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Bind to ``settings``' tenant; ``on_call`` observes every upstream call (metrics).

        ``wall_clock`` gives Unix seconds, for ``X-RateLimit-Reset`` (epoch seconds).
        """
        self._http = http
        self._settings = settings
        self._base_url = settings.base_url
        self._timeout = settings.timeout_s
        self._on_call = on_call or _noop_observer
        self._wall_clock = wall_clock

    # -- public calls -------------------------------------------------------------------

    async def password_login(
        self, username: str, password: str, *, forwarded_for: str | None
    ) -> TokenSet:
        """Log a user in with the password-realm grant (§1.3) on ``settings.connection``.

        ``forwarded_for`` is the end user's IP (from trusted proxies only), sent as
        ``auth0-forwarded-for`` so brute-force protection keys on the user, not the
        gateway (§3). A missing refresh token is a tenant misconfiguration (§1.7): 502.
        """
        data = {
            "grant_type": GRANT_PASSWORD_REALM,
            "realm": self._settings.connection,
            "username": username,
            "password": password,
            "audience": self._settings.audience,
            "scope": self._settings.scope,
        }
        headers: dict[str, str] = {}
        if forwarded_for is not None:
            ip = _valid_ip(forwarded_for)
            if ip is None:
                log.warning("dropping an auth0-forwarded-for value that is not an IP address")
            else:
                headers["auth0-forwarded-for"] = ip

        def parse(response: httpx.Response) -> TokenSet:
            tokens = self._token_set(Endpoint.LOGIN, response)
            if tokens.refresh_token is None:
                raise _Misconfigured(self._missing_refresh_token_hint())
            return tokens

        return await self._exchange(
            Endpoint.LOGIN,
            "POST",
            "/oauth/token",
            parse,
            data=data,
            headers=headers,
            sensitive=(password,),
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        """Exchange a refresh token (§1.4); ``RefreshRejected`` when Auth0 says the session is over.

        The answer carries a new ``refresh_token`` only when rotation is on (§7); otherwise
        the caller keeps using the one it has.
        """
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return await self._exchange(
            Endpoint.REFRESH,
            "POST",
            "/oauth/token",
            lambda response: self._token_set(Endpoint.REFRESH, response),
            data=data,
            sensitive=(refresh_token,),
        )

    async def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token at ``/oauth/revoke`` (§5); 200 with an empty body.

        Auth0 also answers 200 for a token that was already invalid (RFC 7009).
        """
        data = {"token": refresh_token}
        await self._exchange(
            Endpoint.REVOKE,
            "POST",
            "/oauth/revoke",
            lambda response: None,
            data=data,
            sensitive=(refresh_token,),
        )

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        """The user's profile from ``/userinfo`` (§4); ``Unauthorized`` for a bad token.

        Auth0 allows about 5 calls per minute per user (§9): callers must cache the answer.
        """
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}

        def parse(response: httpx.Response) -> dict[str, Any]:
            body = _json_object(response)
            if body is None or not isinstance(body.get("sub"), str):
                raise self._garbage(Endpoint.USERINFO, "no JSON object with a sub")
            return body

        return await self._exchange(
            Endpoint.USERINFO,
            "GET",
            "/userinfo",
            parse,
            headers=headers,
            sensitive=(access_token,),
        )

    async def client_credentials(self, audience: str) -> TokenSet:
        """A machine-to-machine token for ``audience`` (§1.5), e.g. the Management API."""
        data = {"grant_type": "client_credentials", "audience": audience}
        return await self._exchange(
            Endpoint.CLIENT_CREDENTIALS,
            "POST",
            "/oauth/token",
            lambda response: self._token_set(Endpoint.CLIENT_CREDENTIALS, response),
            data=data,
        )

    async def fetch_jwks(self) -> dict[str, Any]:
        """The tenant's JSON Web Key Set from ``/.well-known/jwks.json`` (§6.2)."""

        def parse(response: httpx.Response) -> dict[str, Any]:
            body = _json_object(response)
            if body is None or not isinstance(body.get("keys"), list):
                raise self._garbage(Endpoint.JWKS, "no JSON object with a keys list")
            return body

        return await self._exchange(
            Endpoint.JWKS,
            "GET",
            "/.well-known/jwks.json",
            parse,
            headers={"Accept": "application/json"},
        )

    # -- plumbing -----------------------------------------------------------------------

    async def _exchange(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        parse: Callable[[httpx.Response], _T],
        *,
        data: Mapping[str, str | None] | None = None,
        headers: Mapping[str, str] | None = None,
        sensitive: Iterable[str] = (),
    ) -> _T:
        secrets = [s for s in sensitive if s]
        if self._settings.client_secret is not None:
            secrets.append(self._settings.client_secret.get_secret_value())
        started = time.perf_counter()
        outcome = "error"
        try:
            try:
                form = None
                if data is not None:
                    form = {k: v for k, v in data.items() if v is not None}
                    form.update(self._client_auth())
                response = await self._send(endpoint, method, path, form, headers, secrets)
                if not response.is_success:
                    raise self._error_for(endpoint, response, secrets)
                result = parse(response)
            except _Misconfigured as exc:
                raise self._misconfigured(endpoint, str(exc)) from None
            outcome = "ok"
            return result
        except GatewayError as exc:
            outcome = exc.code
            raise
        finally:
            self._observe(endpoint, outcome, time.perf_counter() - started)

    async def _send(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        form: dict[str, str] | None,
        headers: Mapping[str, str] | None,
        secrets: list[str],
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                f"{self._base_url}{path}",
                data=form,
                headers=headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            log.warning(
                "Auth0 %s timed out after %.1fs (%s)", endpoint, self._timeout, type(exc).__name__
            )
            raise UpstreamUnavailable(
                "The identity provider did not answer in time; try again shortly.",
                retry_after=DEFAULT_UNAVAILABLE_RETRY_S,
            ) from exc
        except httpx.HTTPError as exc:
            # httpx messages name the URL at most, and no URL here carries a credential
            log.warning(
                "Auth0 %s failed: %s: %s", endpoint, type(exc).__name__, _scrub(str(exc), secrets)
            )
            raise UpstreamUnavailable(retry_after=DEFAULT_UNAVAILABLE_RETRY_S) from exc

    def _client_auth(self) -> dict[str, str]:
        client_id = self._settings.client_id
        if not client_id:
            raise _Misconfigured("set GATEWAY_AUTH0__CLIENT_ID")
        auth = {"client_id": client_id}
        if self._settings.client_secret is not None:
            auth["client_secret"] = self._settings.client_secret.get_secret_value()
        return auth

    def _observe(self, endpoint: Endpoint, outcome: str, seconds: float) -> None:
        try:
            self._on_call(endpoint.value, outcome, seconds)
        except Exception:  # a metrics hook must never break a login
            log.exception("the on_call hook failed for %s", endpoint)

    def _token_set(self, endpoint: Endpoint, response: httpx.Response) -> TokenSet:
        body = _json_object(response)
        if body is None:
            raise self._garbage(endpoint, "no JSON object")
        try:
            return TokenSet.model_validate(body)
        except ValidationError as exc:
            # locations and types only: the inputs are tokens
            problems = ", ".join(
                f"{'.'.join(str(p) for p in err['loc'])}:{err['type']}" for err in exc.errors()
            )
            raise self._garbage(endpoint, f"an invalid token response ({problems})") from None

    def _garbage(self, endpoint: Endpoint, what: str) -> UpstreamUnavailable:
        log.warning("Auth0 %s answered %s", endpoint, what)
        return UpstreamUnavailable(
            "The identity provider answered something unexpected; try again shortly.",
            retry_after=DEFAULT_UNAVAILABLE_RETRY_S,
        )

    def _misconfigured(
        self,
        endpoint: Endpoint,
        hint: str,
        *,
        status: int | None = None,
        error: str | None = None,
        description: str = "",
    ) -> UpstreamMisconfigured:
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

    def _missing_refresh_token_hint(self) -> str:
        if "offline_access" not in self._settings.scope.split():
            return "add offline_access to GATEWAY_AUTH0__SCOPE (no refresh token was returned)"
        return (
            "no refresh token was returned: turn on 'Allow Offline Access' for the API "
            f"{self._settings.audience!r} and enable the refresh_token grant on the "
            "application (auth0-wire.md §1.7, §10 trap 5)"
        )

    def _error_for(
        self, endpoint: Endpoint, response: httpx.Response, secrets: list[str]
    ) -> GatewayError:
        """Map an Auth0 error answer to the gateway's error tree.

        Auth0's statuses differ from its own OpenAPI file (§10 trap 7), so the mapping
        keys on ``error`` plus ``error_description`` and falls back on the status only last.
        """
        status = response.status_code
        body = _json_object(response)
        error, description = _error_fields(body)
        description = _scrub(description, secrets)
        lowered = description.lower()

        if endpoint is Endpoint.USERINFO and status in (401, 403):
            # §4 / §10 trap 2: a plain-text "Unauthorized" body, the reason in WWW-Authenticate
            challenge = response.headers.get("WWW-Authenticate", "").lower()
            if "expired" in challenge or "expired" in lowered:
                return Unauthorized(MSG_EXPIRED)
            return Unauthorized(MSG_INVALID)

        if error == "too_many_attempts":
            # §2/§3: brute-force protection or suspicious-IP throttling; Auth0's text tells
            # the user which one and what to do
            log.info("Auth0 %s: too_many_attempts (attack protection)", endpoint)
            return RateLimited(
                description or "Too many failed login attempts; this account is blocked.",
                code="too_many_attempts",
                retry_after=self._retry_after(response, DEFAULT_RATE_LIMIT_RETRY_S),
            )
        if status == 429:
            retry_after = self._retry_after(response, DEFAULT_RATE_LIMIT_RETRY_S)
            log.warning("Auth0 rate-limits %s; retry after %ss", endpoint, retry_after)
            return RateLimited(
                "The identity provider is rate limiting the gateway; try again later.",
                retry_after=retry_after,
            )
        if error == "mfa_required":
            return Forbidden(
                "This account requires multifactor authentication, which this login does not "
                "support.",
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
                # §2: 403 "Wrong email or password." live; the legacy 401
                # invalid_user_password is accepted as the mobile SDKs do
                return InvalidCredentials()
            if endpoint in (Endpoint.REFRESH, Endpoint.REVOKE) and error == "invalid_grant":
                log.info("Auth0 rejected a refresh token on %s: %s", endpoint, description)
                return RefreshRejected()
        if error == "access_denied":
            if status == 401:
                # §2 / §10 trap 7: a bad client secret is 401 access_denied "Unauthorized" live
                return self._misconfigured(
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
                # §1.5: no client grant for the audience, or an unknown audience
                return self._misconfigured(
                    endpoint,
                    "authorize the application for the audience (create a client grant) and "
                    "check GATEWAY_AUTH0__AUDIENCE names an existing API",
                    status=status,
                    error=error,
                    description=description,
                )
            # §2: a Rule or Action denied the login; its text is meant for the user
            return Forbidden(description or None, code="access_denied")
        hint = _MISCONFIGURATION_HINTS.get(error or "")
        if error == "server_error" and "default connection" in lowered:
            hint = (
                "set Tenant Settings > Default Directory (e.g. Username-Password-Authentication), "
                "auth0-wire.md §1.2 / §10 trap 5"
            )
        if hint is not None:
            return self._misconfigured(
                endpoint, hint, status=status, error=error, description=description
            )
        if status >= 500 or body is None:
            log.warning(
                "Auth0 %s answered %s %s", endpoint, status, error or "with no JSON error body"
            )
            return UpstreamUnavailable(
                retry_after=self._retry_after(response, DEFAULT_UNAVAILABLE_RETRY_S)
            )
        return self._misconfigured(
            endpoint,
            "an error the gateway does not expect; see the tenant's logs in the Auth0 dashboard",
            status=status,
            error=error,
            description=description,
        )

    def _retry_after(self, response: httpx.Response, default: int) -> int:
        """Seconds to wait, from ``Retry-After`` or ``X-RateLimit-Reset`` (epoch seconds, §9).

        Bounded to 1..``MAX_RETRY_AFTER_S`` so a skewed clock or a silly header never
        tells clients to go away for a day.
        """
        seconds = requested_wait_s(response.headers, self._wall_clock())
        if seconds is None:
            seconds = default
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(seconds)))


_MISCONFIGURATION_HINTS: dict[str, str] = {
    "unauthorized_client": (
        "enable the grant type named in the message on the application (Advanced > Grant "
        "Types); password-realm is a separate entry from password, auth0-wire.md §10 trap 6"
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


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None for anything else (plain text, HTML, garbage)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error_fields(body: Mapping[str, Any] | None) -> tuple[str | None, str]:
    """``error`` and ``error_description``, with the SDKs' fallback to ``code``/``description``."""
    if body is None:
        return None, ""
    error = body.get("error", body.get("code"))
    description = body.get("error_description", body.get("description"))
    return (
        error if isinstance(error, str) else None,
        description[:_MAX_DESCRIPTION] if isinstance(description, str) else "",
    )


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every sensitive value replaced, and no control characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None
