"""A typed client for the Auth0 Authentication API.

The facts it relies on, with their sources: docs/emulator.md, "Auth0 wire facts it reproduces".

Every call goes through one injected, shared :class:`httpx.AsyncClient` with
``settings.timeout_s``, and every failure leaves this module as an error of
:mod:`app.http.errors`: Auth0's error answers as :mod:`app.clients.auth0_errors` maps them
(the user's fault as 401/403, Auth0 throttling as 429, a tenant that refuses the gateway
itself as 502 plus a loud log line), and anything upstream being down or answering garbage
as 503 with ``Retry-After``.

Requests to ``/oauth/token`` and ``/oauth/revoke`` are ``application/x-www-form-urlencoded``:
RFC 6749 §4.3.2 mandates form bodies for the token endpoint, Auth0 accepts both form and JSON,
and form is what every OAuth server, the emulator included, must understand.
Client authentication is ``client_secret_post`` (the secret in the body).

Nothing here logs a token, password or secret: error descriptions from Auth0 are scrubbed
of the values sent, transport errors are logged by type and message (the request URLs carry
no credentials), and malformed success bodies are reported by field location only.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from app.clients.auth0_errors import (
    DEFAULT_UNAVAILABLE_RETRY_S,
    Endpoint,
    error_for,
    json_object,
    misconfigured,
    scrub,
)
from app.http.errors import GatewayError, UpstreamUnavailable
from settings.model import Auth0Settings

log = logging.getLogger(__name__)

GRANT_PASSWORD_REALM = "http://auth0.com/oauth/grant-type/password-realm"  # noqa: S105 - a grant name

#: ``on_call(endpoint, outcome, seconds)``: outcome is ``"ok"`` or the error code answered.
CallObserver = Callable[[str, str, float], None]

_T = TypeVar("_T")


class TokenSet(BaseModel):
    """A successful ``/oauth/token`` answer; its ``repr`` shows no token."""

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
        """Log a user in with the password-realm grant on ``settings.connection``.

        ``forwarded_for`` is the end user's IP (from trusted proxies only), sent as
        ``auth0-forwarded-for`` so brute-force protection keys on the user, not the
        gateway. A missing refresh token is a tenant misconfiguration: 502.
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
        """Exchange a refresh token; ``RefreshRejected`` when Auth0 says the session is over.

        The answer carries a new ``refresh_token`` only when rotation is on; otherwise
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
        """Revoke a refresh token at ``/oauth/revoke``; 200 with an empty body.

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
        """The user's profile from ``/userinfo``; ``Unauthorized`` for a bad token.

        Auth0 allows about 5 calls per minute per user: callers must cache the answer.
        """
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}

        def parse(response: httpx.Response) -> dict[str, Any]:
            body = json_object(response)
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
        """A machine-to-machine token for ``audience``, e.g. the Management API."""
        data = {"grant_type": "client_credentials", "audience": audience}
        return await self._exchange(
            Endpoint.CLIENT_CREDENTIALS,
            "POST",
            "/oauth/token",
            lambda response: self._token_set(Endpoint.CLIENT_CREDENTIALS, response),
            data=data,
        )

    async def fetch_jwks(self) -> dict[str, Any]:
        """The tenant's JSON Web Key Set from ``/.well-known/jwks.json``."""

        def parse(response: httpx.Response) -> dict[str, Any]:
            body = json_object(response)
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
                    raise error_for(endpoint, response, secrets, wall_clock=self._wall_clock)
                result = parse(response)
            except _Misconfigured as exc:
                raise misconfigured(endpoint, str(exc)) from None
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
                "Auth0 %s failed: %s: %s", endpoint, type(exc).__name__, scrub(str(exc), secrets)
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
        body = json_object(response)
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

    def _missing_refresh_token_hint(self) -> str:
        if "offline_access" not in self._settings.scope.split():
            return "add offline_access to GATEWAY_AUTH0__SCOPE (no refresh token was returned)"
        return (
            "no refresh token was returned: turn on 'Allow Offline Access' for the API "
            f"{self._settings.audience!r} and enable the refresh_token grant on the "
            "application (docs/tenant.md)"
        )


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None
