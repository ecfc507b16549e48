"""A typed client for the Auth0 Management API v2 (docs/emulator.md, "Management API").

Calls go through the one shared :class:`httpx.AsyncClient` with a bearer token from a
:class:`~app.clients.management_tokens.TokenProvider`. Every failure leaves as an error of
:mod:`app.clients.management_errors` (part of the gateway's tree).

Rate limit (about 2 requests per second per tenant on the Free plan): a 429 is
retried after the wait ``Retry-After`` or ``X-RateLimit-Reset`` asks for, within a
:class:`RetryPolicy`: a few tries and a bounded total wait. Interactive routes wait little
(:data:`INTERACTIVE`); admin routes and provisioning wait longer (:data:`ADMIN`,
:data:`PROVISIONING`); past the bound the caller gets a 429 with ``Retry-After``.

A 401 means the token went bad (expired early, keys rotated): it is dropped and the call is
made once more with a fresh one. User ids carry a ``|`` and are URL-encoded in paths.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.auth.cipher import SessionCipher
from app.cache import Cache
from app.clients.auth0 import Auth0AuthClient
from app.clients.management_errors import (
    ManagementErrorBody,
    ManagementFailure,
    ManagementUnavailable,
    error_for,
)
from app.clients.management_tokens import ClientCredentialsTokens, TokenProvider
from app.clients.rate_limits import requested_wait_s
from settings.model import Settings

log = logging.getLogger(__name__)

Json = dict[str, Any]

#: Auth0 Public Cloud's largest page.
MAX_PER_PAGE = 50
#: Upper bound of any ``Retry-After`` derived from Auth0's headers.
MAX_RETRY_AFTER_S = 600
_DEFAULT_RATE_LIMIT_WAIT_S = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """How a 429 is ridden out: at most ``attempts`` tries and ``max_wait_s`` of waiting."""

    attempts: int
    max_wait_s: float


#: User-facing routes (sign-up, self-service): one more try, if Auth0 asks for little patience.
INTERACTIVE = RetryPolicy(attempts=2, max_wait_s=2.0)
#: Admin routes.
ADMIN = RetryPolicy(attempts=4, max_wait_s=15.0)
#: ``gateway provision`` and ``gateway doctor``: nobody waits on a page.
PROVISIONING = RetryPolicy(attempts=8, max_wait_s=60.0)


class Identity(BaseModel):
    """One of a user's identities, without any upstream provider tokens."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    connection: str | None = None
    provider: str | None = None
    user_id: str | None = None
    is_social: bool | None = Field(default=None, alias="isSocial")


class Auth0User(BaseModel):
    """A user as the Management API returns it; unknown fields are dropped."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: str
    email: str | None = None
    email_verified: bool | None = None
    username: str | None = None
    name: str | None = None
    nickname: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    picture: str | None = None
    user_metadata: dict[str, Any] = Field(default_factory=dict)
    app_metadata: dict[str, Any] = Field(default_factory=dict)
    identities: tuple[Identity, ...] = ()
    blocked: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_login: datetime | None = None
    logins_count: int | None = None


class UserPage(BaseModel):
    """One page of ``GET /api/v2/users?include_totals=true``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    start: int = 0
    limit: int = 0
    total: int = 0
    users: tuple[Auth0User, ...] = ()


def user_path(user_id: str) -> str:
    """``/users/<id>`` with the id URL-encoded (``auth0|abc`` -> ``auth0%7Cabc``)."""
    return f"/users/{quote(user_id, safe='')}"


class ManagementClient:
    """Management API v2 calls for one tenant."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        tokens: TokenProvider,
        *,
        timeout_s: float = 5.0,
        retry: RetryPolicy = ADMIN,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Call ``<base_url>/api/v2`` (``base_url``: the tenant's origin) with ``tokens``.

        ``sleep`` and ``wall_clock`` (Unix seconds, for ``X-RateLimit-Reset``) are injectable
        so tests can ride out a rate limit without waiting.
        """
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api = f"{self._base_url}/api/v2"
        self._tokens = tokens
        self._timeout = timeout_s
        self.retry = retry
        self._sleep = sleep
        self._wall_clock = wall_clock

    def with_retry(self, retry: RetryPolicy) -> ManagementClient:
        """The same client (same connection pool, same token) with another retry policy."""
        return ManagementClient(
            self._http,
            self._base_url,
            self._tokens,
            timeout_s=self._timeout,
            retry=retry,
            sleep=self._sleep,
            wall_clock=self._wall_clock,
        )

    # -- users -------------------------------------------------------------------

    async def create_user(
        self, body: Mapping[str, Any], *, sensitive: Iterable[str] = ()
    ) -> Auth0User:
        """``POST /users`` (201); ``sensitive`` values (the password) never reach a message."""
        return _user(await self.request("POST", "/users", json=body, sensitive=sensitive))

    async def get_user(self, user_id: str) -> Auth0User:
        """``GET /users/{id}``."""
        return _user(await self.request("GET", user_path(user_id)))

    async def update_user(
        self, user_id: str, body: Mapping[str, Any], *, sensitive: Iterable[str] = ()
    ) -> Auth0User:
        """``PATCH /users/{id}``: metadata merges one level deep, ``null`` unsets."""
        return _user(
            await self.request("PATCH", user_path(user_id), json=body, sensitive=sensitive)
        )

    async def delete_user(self, user_id: str) -> None:
        """``DELETE /users/{id}``: any 2xx is success."""
        await self.request("DELETE", user_path(user_id))

    async def list_users(self, *, q: str | None, page: int, per_page: int) -> UserPage:
        """``GET /users`` with Lucene ``q`` (search engine v3), 0-based ``page``, totals."""
        params: dict[str, str | int] = {
            "page": page,
            "per_page": min(per_page, MAX_PER_PAGE),
            "include_totals": "true",
            "search_engine": "v3",
        }
        if q:
            params["q"] = q
        body = await self.request("GET", "/users", params=params)
        try:
            return UserPage.model_validate(body)
        except ValidationError:
            raise _garbage("GET /users", "no {users, total} page") from None

    # -- tenant settings ---------------------------------------------------------

    async def get_tenant_settings(self) -> Json:
        """``GET /tenants/settings``."""
        return _object(await self.request("GET", "/tenants/settings"), "tenant settings")

    async def update_tenant_settings(self, body: Mapping[str, Any]) -> Json:
        """``PATCH /tenants/settings``."""
        return _object(
            await self.request("PATCH", "/tenants/settings", json=body), "tenant settings"
        )

    # -- clients -----------------------------------------------------------------

    async def list_clients(self) -> list[Json]:
        """Every application, page by page."""
        return await self._all_pages("/clients", "clients")

    async def get_client(self, client_id: str) -> Json:
        """``GET /clients/{id}``."""
        return _object(await self.request("GET", f"/clients/{quote(client_id, safe='')}"), "client")

    async def create_client(self, body: Mapping[str, Any]) -> Json:
        """``POST /clients``: the answer holds the new ``client_id`` and ``client_secret``."""
        return _object(await self.request("POST", "/clients", json=body), "client")

    async def update_client(self, client_id: str, body: Mapping[str, Any]) -> Json:
        """``PATCH /clients/{id}``."""
        path = f"/clients/{quote(client_id, safe='')}"
        return _object(await self.request("PATCH", path, json=body), "client")

    # -- client grants -----------------------------------------------------------

    async def list_client_grants(
        self, *, client_id: str | None = None, audience: str | None = None
    ) -> list[Json]:
        """Client grants, filtered by client and audience."""
        params = {k: v for k, v in (("client_id", client_id), ("audience", audience)) if v}
        return await self._all_pages("/client-grants", "client_grants", params)

    async def create_client_grant(self, body: Mapping[str, Any]) -> Json:
        """``POST /client-grants``."""
        return _object(await self.request("POST", "/client-grants", json=body), "client grant")

    async def update_client_grant(self, grant_id: str, body: Mapping[str, Any]) -> Json:
        """``PATCH /client-grants/{id}``."""
        path = f"/client-grants/{quote(grant_id, safe='')}"
        return _object(await self.request("PATCH", path, json=body), "client grant")

    # -- resource servers --------------------------------------------------------

    async def list_resource_servers(self) -> list[Json]:
        """Every API, the Management API itself included."""
        return await self._all_pages("/resource-servers", "resource_servers")

    async def create_resource_server(self, body: Mapping[str, Any]) -> Json:
        """``POST /resource-servers``."""
        return _object(await self.request("POST", "/resource-servers", json=body), "API")

    async def update_resource_server(
        self, resource_server_id: str, body: Mapping[str, Any]
    ) -> Json:
        """``PATCH /resource-servers/{id}`` (by the resource server's ``id``)."""
        path = f"/resource-servers/{quote(resource_server_id, safe='')}"
        return _object(await self.request("PATCH", path, json=body), "API")

    # -- plumbing -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        sensitive: Iterable[str] = (),
    ) -> Any:
        """One Management call (``path`` under ``/api/v2``): the JSON answer, None when empty.

        Retries a 429 within :attr:`retry` and a 401 once with a fresh token.
        """
        operation = f"{method} {path.split('?', 1)[0]}"
        secrets = [s for s in sensitive if s]
        waited = 0.0
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            token = await self._tokens.get()
            response = await self._send(method, path, token, json, params, operation)
            if response.is_success:
                return _json_or_none(response, operation)
            body = ManagementErrorBody.from_response(response, secrets)
            if response.status_code == 401 and not renewed and await self._tokens.invalidate(token):
                renewed = True
                attempt -= 1  # a renewed token is not a rate-limit retry
                continue
            if response.status_code == 429:
                wait = self._rate_limit_wait(response)
                if attempt < self.retry.attempts and waited + wait <= self.retry.max_wait_s:
                    log.info("Management %s rate-limited; retrying in %.2fs", operation, wait)
                    await self._sleep(wait)
                    waited += wait
                    continue
                raise error_for(body, operation=operation, retry_after_s=math.ceil(max(1, wait)))
            raise error_for(body, operation=operation, retry_after_s=5)

    async def _send(
        self,
        method: str,
        path: str,
        token: str,
        json: Mapping[str, Any] | None,
        params: Mapping[str, str | int] | None,
        operation: str,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                f"{self._api}{path}",
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            log.warning("Auth0 Management %s timed out after %.1fs", operation, self._timeout)
            raise ManagementUnavailable(
                "The identity provider did not answer in time; try again shortly.", retry_after=5
            ) from exc
        except httpx.HTTPError as exc:
            # httpx messages name the URL at most; no URL here carries a credential
            log.warning("Auth0 Management %s failed: %s: %s", operation, type(exc).__name__, exc)
            raise ManagementUnavailable(retry_after=5) from exc

    def _rate_limit_wait(self, response: httpx.Response) -> float:
        """Seconds to wait: ``Retry-After`` (seconds or a date), else ``X-RateLimit-Reset``."""
        seconds = requested_wait_s(response.headers, self._wall_clock())
        if seconds is None:
            seconds = _DEFAULT_RATE_LIMIT_WAIT_S
        return max(0.0, min(float(MAX_RETRY_AFTER_S), seconds))

    async def _all_pages(
        self, path: str, key: str, params: Mapping[str, str] | None = None
    ) -> list[Json]:
        items: list[Json] = []
        page = 0
        while True:
            query: dict[str, str | int] = {
                **(params or {}),
                "page": page,
                "per_page": MAX_PER_PAGE,
                "include_totals": "true",
            }
            body = await self.request("GET", path, params=query)
            if isinstance(body, list):  # a tenant that ignores include_totals
                items.extend(x for x in body if isinstance(x, dict))
                return items
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise _garbage(f"GET {path}", f"no {key} list")
            chunk = [x for x in body[key] if isinstance(x, dict)]
            items.extend(chunk)
            total = body.get("total")
            if not chunk or not isinstance(total, int) or len(items) >= total:
                return items
            page += 1


def _json_or_none(response: httpx.Response, operation: str) -> Any:
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        raise _garbage(operation, "a body that is not JSON") from None


def _object(body: Any, what: str) -> Json:
    if not isinstance(body, dict):
        raise _garbage(what, "no JSON object")
    return body


def _user(body: Any) -> Auth0User:
    try:
        return Auth0User.model_validate(body)
    except ValidationError:
        raise _garbage("user", "no user object") from None


def _garbage(operation: str, what: str) -> ManagementFailure:
    log.warning("Auth0 Management %s answered %s", operation, what)
    return ManagementUnavailable(
        "The identity provider answered something unexpected; try again shortly.", retry_after=5
    )


def build_management_client(
    settings: Settings,
    http: httpx.AsyncClient,
    auth0: Auth0AuthClient,
    cache: Cache,
    cipher: SessionCipher,
) -> ManagementClient:
    """The gateway's client: its own ``client_credentials`` token, shared through ``cache``."""
    tokens = ClientCredentialsTokens(
        lambda: auth0.client_credentials(settings.auth0.management_audience),
        client_id=settings.auth0.client_id or "",
        cache=cache,
        cipher=cipher,
        namespace=settings.cache_namespace,
    )
    return ManagementClient(
        http, settings.auth0.base_url, tokens, timeout_s=settings.auth0.timeout_s
    )
