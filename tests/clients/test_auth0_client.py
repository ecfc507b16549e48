"""The Auth0 Authentication API client: request shapes and the error mapping at its boundary."""

from __future__ import annotations

import email.utils
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.clients.auth0 import GRANT_PASSWORD_REALM, Auth0AuthClient, TokenSet
from app.clients.auth0_errors import MAX_RETRY_AFTER_S
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
from tests.tokens import AUDIENCE, CLIENT_ID, DOMAIN

BASE = f"https://{DOMAIN}"
NOW = 1_750_000_000.0
CLIENT_SECRET = "client-secret-Zx81kQ-never-log-me"
PASSWORD = "hunter2-Pa55word!-never-log-me"
ACCESS_TOKEN = "eyJhbGciOiJSUzI1NiJ9.access-token-never-log-me.c2ln"
REFRESH_TOKEN = "v1.MRrefresh-token-never-log-me"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.id-token-never-log-me.c2ln"
SENSITIVE = (CLIENT_SECRET, PASSWORD, ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN)

TOKEN_RESPONSE: dict[str, Any] = {
    "access_token": ACCESS_TOKEN,
    "refresh_token": REFRESH_TOKEN,
    "id_token": ID_TOKEN,
    "token_type": "Bearer",
    "expires_in": 86400,
    "scope": "openid profile email offline_access",
}


@pytest.fixture
def settings() -> Auth0Settings:
    return Auth0Settings(
        domain=DOMAIN,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        audience=AUDIENCE,
        timeout_s=3.5,
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def observed() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def client(
    http: httpx.AsyncClient, settings: Auth0Settings, observed: list[tuple[str, str]]
) -> Auth0AuthClient:
    def on_call(endpoint: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        observed.append((endpoint, outcome))

    return Auth0AuthClient(http, settings, on_call=on_call, wall_clock=lambda: NOW)


@pytest.fixture
def auth0() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def form(request: httpx.Request) -> dict[str, str]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    parsed = parse_qs(request.content.decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in parsed.values()), "no parameter is sent twice"
    return {k: v[0] for k, v in parsed.items()}


def error(status: int, code: str, description: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "error_description": description, **extra})


async def login(client: Auth0AuthClient) -> TokenSet:
    return await client.password_login("jane@example.com", PASSWORD, forwarded_for="203.0.113.7")


class TestPasswordLogin:
    async def test_request_shape(self, client: Auth0AuthClient, auth0: respx.MockRouter) -> None:
        route = auth0.post("/oauth/token").respond(200, json=TOKEN_RESPONSE)

        tokens = await login(client)

        request = route.calls.last.request
        assert form(request) == {
            "grant_type": GRANT_PASSWORD_REALM,
            "realm": "Username-Password-Authentication",
            "username": "jane@example.com",
            "password": PASSWORD,
            "audience": AUDIENCE,
            "scope": "openid profile email offline_access",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        assert request.headers["auth0-forwarded-for"] == "203.0.113.7"
        assert "authorization" not in request.headers
        assert request.extensions["timeout"] == {
            "connect": 3.5,
            "read": 3.5,
            "write": 3.5,
            "pool": 3.5,
        }
        assert tokens.access_token == ACCESS_TOKEN
        assert tokens.refresh_token is not None
        assert tokens.refresh_token.get_secret_value() == REFRESH_TOKEN
        assert tokens.id_token is not None
        assert tokens.id_token.get_secret_value() == ID_TOKEN
        assert (tokens.token_type, tokens.expires_in) == ("Bearer", 86400)
        assert tokens.scope == "openid profile email offline_access"

    async def test_uses_the_injected_client(
        self, settings: Auth0Settings, auth0: respx.MockRouter
    ) -> None:
        auth0.post("/oauth/token").respond(200, json=TOKEN_RESPONSE)
        seen: list[httpx.Request] = []

        async def hook(request: httpx.Request) -> None:
            seen.append(request)

        async with httpx.AsyncClient(event_hooks={"request": [hook]}) as http:
            client = Auth0AuthClient(http, settings)
            await login(client)
            await login(client)
        assert len(seen) == 2

    async def test_without_forwarded_for_no_header(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        route = auth0.post("/oauth/token").respond(200, json=TOKEN_RESPONSE)
        await client.password_login("jane@example.com", PASSWORD, forwarded_for=None)
        assert "auth0-forwarded-for" not in route.calls.last.request.headers

    async def test_forwarded_for_that_is_not_an_ip_is_dropped(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        route = auth0.post("/oauth/token").respond(200, json=TOKEN_RESPONSE)
        await client.password_login("jane@example.com", PASSWORD, forwarded_for="1.2.3.4, evil")
        assert "auth0-forwarded-for" not in route.calls.last.request.headers

    async def test_ipv6_forwarded_for(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        route = auth0.post("/oauth/token").respond(200, json=TOKEN_RESPONSE)
        await client.password_login("jane@example.com", PASSWORD, forwarded_for="2001:db8::1")
        assert route.calls.last.request.headers["auth0-forwarded-for"] == "2001:db8::1"

    async def test_scope_absent_is_none(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        body = {k: v for k, v in TOKEN_RESPONSE.items() if k not in ("scope", "id_token")}
        auth0.post("/oauth/token").respond(200, json=body)
        tokens = await login(client)
        assert tokens.scope is None
        assert tokens.id_token is None

    async def test_missing_refresh_token_is_a_tenant_misconfiguration(
        self,
        client: Auth0AuthClient,
        auth0: respx.MockRouter,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        body = {k: v for k, v in TOKEN_RESPONSE.items() if k != "refresh_token"}
        auth0.post("/oauth/token").respond(200, json=body)

        with pytest.raises(UpstreamMisconfigured) as caught:
            await login(client)

        assert caught.value.status_code == 502
        loud = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(loud) == 1
        assert "Allow Offline Access" in loud[0].getMessage()

    async def test_missing_refresh_token_without_offline_access_scope_names_the_scope(
        self,
        http: httpx.AsyncClient,
        settings: Auth0Settings,
        auth0: respx.MockRouter,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        client = Auth0AuthClient(http, settings.model_copy(update={"scope": "openid email"}))
        body = {k: v for k, v in TOKEN_RESPONSE.items() if k != "refresh_token"}
        auth0.post("/oauth/token").respond(200, json=body)
        with pytest.raises(UpstreamMisconfigured):
            await login(client)
        assert "GATEWAY_AUTH0__SCOPE" in caplog.text

    def test_repr_never_shows_tokens(self) -> None:
        tokens = TokenSet.model_validate(TOKEN_RESPONSE)
        for text in (repr(tokens), str(tokens), f"{tokens!r}"):
            assert ACCESS_TOKEN not in text
            assert REFRESH_TOKEN not in text
            assert ID_TOKEN not in text
        assert "86400" in repr(tokens)


# status, body, expected class, expected HTTP status, expected code
LOGIN_ERRORS: list[tuple[str, httpx.Response, type[GatewayError], int, str]] = [
    (
        "wrong password (live: 403 invalid_grant)",
        error(403, "invalid_grant", "Wrong email or password."),
        InvalidCredentials,
        401,
        "invalid_grant",
    ),
    (
        "legacy invalid_user_password",
        error(401, "invalid_user_password", "Wrong email or password."),
        InvalidCredentials,
        401,
        "invalid_grant",
    ),
    (
        "brute-force protection",
        error(
            429,
            "too_many_attempts",
            "Your account has been blocked after multiple consecutive login attempts.",
        ),
        RateLimited,
        429,
        "too_many_attempts",
    ),
    (
        "mfa required (403 live, 401 in the OAS)",
        error(403, "mfa_required", "Multifactor authentication required", mfa_token="Fe26..Ha"),
        Forbidden,
        403,
        "mfa_required",
    ),
    (
        "user blocked by an admin",
        error(401, "unauthorized", "user is blocked"),
        Forbidden,
        403,
        "user_blocked",
    ),
    ("blocked_user", error(403, "blocked_user", "Blocked user"), Forbidden, 403, "user_blocked"),
    (
        "breached password",
        error(401, "password_leaked", "This login attempt has been blocked because ..."),
        Forbidden,
        403,
        "password_leaked",
    ),
    (
        "a Rule or Action denies",
        error(403, "access_denied", "Access denied"),
        Forbidden,
        403,
        "access_denied",
    ),
    (
        "bad client secret (live: 401 access_denied)",
        error(401, "access_denied", "Unauthorized"),
        UpstreamMisconfigured,
        502,
        "upstream_misconfigured",
    ),
    (
        "bad client secret (OAS: invalid_client)",
        error(401, "invalid_client", "Client authentication failed"),
        UpstreamMisconfigured,
        502,
        "upstream_misconfigured",
    ),
    (
        "grant not enabled on the client",
        error(
            403,
            "unauthorized_client",
            f"Grant type '{GRANT_PASSWORD_REALM}' not allowed for the client.",
            error_uri="https://auth0.com/docs/clients/client-grant-types",
        ),
        UpstreamMisconfigured,
        502,
        "upstream_misconfigured",
    ),
    (
        "no default connection",
        error(500, "server_error", "Authorization server not configured with default connection."),
        UpstreamMisconfigured,
        502,
        "upstream_misconfigured",
    ),
    (
        "unknown realm",
        error(400, "invalid_request", "Unknown realm non-existent-connection."),
        UpstreamMisconfigured,
        502,
        "upstream_misconfigured",
    ),
    (
        "unknown audience",
        error(403, "access_denied", "Service not found: https://api.venues.test"),
        UpstreamMisconfigured,
        502,
        "upstream_misconfigured",
    ),
    (
        "an error nobody expects",
        error(409, "weird_error", "Something odd"),
        UpstreamMisconfigured,
        502,
        "upstream_misconfigured",
    ),
    (
        "Auth0 rate limit",
        httpx.Response(429, json={"error": "too_many_requests", "error_description": "Too many"}),
        RateLimited,
        429,
        "too_many_requests",
    ),
    (
        "server error",
        error(500, "server_error", "Internal error"),
        UpstreamUnavailable,
        503,
        "upstream_unavailable",
    ),
    (
        "bad gateway HTML",
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        UpstreamUnavailable,
        503,
        "upstream_unavailable",
    ),
    (
        "4xx with no JSON body",
        httpx.Response(403, text="Forbidden"),
        UpstreamUnavailable,
        503,
        "upstream_unavailable",
    ),
    (
        "200 garbage",
        httpx.Response(200, text="<html>captive portal</html>"),
        UpstreamUnavailable,
        503,
        "upstream_unavailable",
    ),
    (
        "200 JSON list",
        httpx.Response(200, json=[TOKEN_RESPONSE]),
        UpstreamUnavailable,
        503,
        "upstream_unavailable",
    ),
    (
        "200 without access_token",
        httpx.Response(200, json={"token_type": "Bearer", "expires_in": 60}),
        UpstreamUnavailable,
        503,
        "upstream_unavailable",
    ),
    (
        "200 with a non-integer expires_in",
        httpx.Response(200, json={**TOKEN_RESPONSE, "expires_in": "soon"}),
        UpstreamUnavailable,
        503,
        "upstream_unavailable",
    ),
]


class TestLoginErrors:
    @pytest.mark.parametrize(
        ("response", "cls", "status", "code"),
        [pytest.param(*row[1:], id=row[0]) for row in LOGIN_ERRORS],
    )
    async def test_maps(
        self,
        client: Auth0AuthClient,
        auth0: respx.MockRouter,
        observed: list[tuple[str, str]],
        response: httpx.Response,
        cls: type[GatewayError],
        status: int,
        code: str,
    ) -> None:
        auth0.post("/oauth/token").mock(return_value=response)

        with pytest.raises(cls) as caught:
            await login(client)

        assert type(caught.value) is cls
        assert (caught.value.status_code, caught.value.code) == (status, code)
        if status in (429, 503):
            assert int(caught.value.headers["Retry-After"]) >= 1
        if status == 401:
            assert caught.value.headers["WWW-Authenticate"].startswith("Bearer ")
        assert observed == [("oauth_token_password_realm", code)]

    @pytest.mark.parametrize(
        "response",
        [pytest.param(row[1], id=row[0]) for row in LOGIN_ERRORS if row[3] == 502],
    )
    async def test_misconfiguration_logs_loudly_with_code_and_hint(
        self,
        client: Auth0AuthClient,
        auth0: respx.MockRouter,
        caplog: pytest.LogCaptureFixture,
        response: httpx.Response,
    ) -> None:
        auth0.post("/oauth/token").mock(return_value=response)
        with pytest.raises(UpstreamMisconfigured):
            await login(client)
        loud = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(loud) == 1
        message = loud[0].getMessage()
        assert response.json()["error"] in message
        assert "Likely fix:" in message

    async def test_user_errors_are_not_logged_as_errors(
        self, client: Auth0AuthClient, auth0: respx.MockRouter, caplog: pytest.LogCaptureFixture
    ) -> None:
        auth0.post("/oauth/token").mock(
            return_value=error(403, "invalid_grant", "Wrong email or password.")
        )
        with pytest.raises(InvalidCredentials):
            await login(client)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    async def test_action_text_reaches_the_user(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        auth0.post("/oauth/token").mock(
            return_value=error(403, "access_denied", "Your subscription has lapsed.")
        )
        with pytest.raises(Forbidden) as caught:
            await login(client)
        assert caught.value.description == "Your subscription has lapsed."


class TestTransportFailures:
    @pytest.mark.parametrize(
        "exc",
        [
            httpx.ConnectTimeout("timed out"),
            httpx.ReadTimeout("timed out"),
            httpx.PoolTimeout("timed out"),
            httpx.ConnectError("[Errno 111] Connection refused"),
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            httpx.ReadError("connection reset"),
        ],
        ids=lambda e: type(e).__name__,
    )
    async def test_is_unavailable_with_retry_after(
        self,
        client: Auth0AuthClient,
        auth0: respx.MockRouter,
        observed: list[tuple[str, str]],
        exc: Exception,
    ) -> None:
        auth0.post("/oauth/token").mock(side_effect=exc)
        with pytest.raises(UpstreamUnavailable) as caught:
            await login(client)
        assert caught.value.status_code == 503
        assert int(caught.value.headers["Retry-After"]) >= 1
        assert observed == [("oauth_token_password_realm", "upstream_unavailable")]

    async def test_every_call_maps_transport_failures(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        auth0.route().mock(side_effect=httpx.ConnectError("refused"))
        for call in (
            client.refresh(REFRESH_TOKEN),
            client.revoke(REFRESH_TOKEN),
            client.userinfo(ACCESS_TOKEN),
            client.client_credentials(AUDIENCE),
            client.fetch_jwks(),
        ):
            with pytest.raises(UpstreamUnavailable):
                await call


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"X-RateLimit-Reset": str(int(NOW) + 42)}, 42),
            ({"X-RateLimit-Reset": str(int(NOW) + 86_400)}, MAX_RETRY_AFTER_S),
            ({"X-RateLimit-Reset": str(int(NOW) - 30)}, 1),
            ({"X-RateLimit-Reset": "not-a-number"}, 60),
            ({"Retry-After": "7", "X-RateLimit-Reset": str(int(NOW) + 42)}, 7),
            ({"Retry-After": email.utils.formatdate(NOW + 90, usegmt=True)}, 90),
            ({"Retry-After": "garbage"}, 60),
            ({}, 60),
        ],
        ids=[
            "reset-epoch",
            "reset-far-future-bounded",
            "reset-in-the-past",
            "reset-garbage",
            "retry-after-wins",
            "retry-after-http-date",
            "retry-after-garbage",
            "no-headers",
        ],
    )
    async def test_rate_limit_retry_after(
        self,
        client: Auth0AuthClient,
        auth0: respx.MockRouter,
        headers: dict[str, str],
        expected: int,
    ) -> None:
        auth0.post("/oauth/token").respond(
            429,
            json={"error": "too_many_requests", "error_description": "Too many requests."},
            headers={"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0", **headers},
        )
        with pytest.raises(RateLimited) as caught:
            await client.refresh(REFRESH_TOKEN)
        assert caught.value.headers["Retry-After"] == str(expected)

    async def test_too_many_attempts_honours_headers(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        auth0.post("/oauth/token").mock(
            return_value=httpx.Response(
                429,
                json={"error": "too_many_attempts", "error_description": "blocked"},
                headers={"X-RateLimit-Reset": str(int(NOW) + 120)},
            )
        )
        with pytest.raises(RateLimited) as caught:
            await login(client)
        assert caught.value.code == "too_many_attempts"
        assert caught.value.headers["Retry-After"] == "120"

    async def test_5xx_retry_after_is_passed_on(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        auth0.get("/userinfo").respond(503, text="down", headers={"Retry-After": "12"})
        with pytest.raises(UpstreamUnavailable) as caught:
            await client.userinfo(ACCESS_TOKEN)
        assert caught.value.headers["Retry-After"] == "12"


class TestRefresh:
    async def test_request_shape(self, client: Auth0AuthClient, auth0: respx.MockRouter) -> None:
        route = auth0.post("/oauth/token").respond(200, json=TOKEN_RESPONSE)

        tokens = await client.refresh(REFRESH_TOKEN)

        assert form(route.calls.last.request) == {
            "grant_type": "refresh_token",
            "refresh_token": REFRESH_TOKEN,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        assert tokens.access_token == ACCESS_TOKEN

    async def test_non_rotating_answer_has_no_refresh_token(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        body = {k: v for k, v in TOKEN_RESPONSE.items() if k != "refresh_token"}
        auth0.post("/oauth/token").respond(200, json=body)
        tokens = await client.refresh(REFRESH_TOKEN)
        assert tokens.refresh_token is None

    @pytest.mark.parametrize(
        "description",
        [
            "Unknown or invalid refresh token.",
            "The refresh_token was generated for a user who doesn't exist anymore.",
        ],
    )
    async def test_invalid_grant_ends_the_session(
        self, client: Auth0AuthClient, auth0: respx.MockRouter, description: str
    ) -> None:
        auth0.post("/oauth/token").mock(return_value=error(403, "invalid_grant", description))
        with pytest.raises(RefreshRejected) as caught:
            await client.refresh(REFRESH_TOKEN)
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_grant"
        assert 'error="invalid_token"' in caught.value.headers["WWW-Authenticate"]
        assert isinstance(caught.value, Unauthorized)

    async def test_blocked_user_on_refresh(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        auth0.post("/oauth/token").mock(return_value=error(401, "unauthorized", "user is blocked"))
        with pytest.raises(Forbidden) as caught:
            await client.refresh(REFRESH_TOKEN)
        assert caught.value.code == "user_blocked"

    async def test_timeout_keeps_the_session(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        auth0.post("/oauth/token").mock(side_effect=httpx.ReadTimeout("timed out"))
        with pytest.raises(UpstreamUnavailable):
            await client.refresh(REFRESH_TOKEN)

    async def test_bad_client_secret(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        auth0.post("/oauth/token").mock(return_value=error(401, "access_denied", "Unauthorized"))
        with pytest.raises(UpstreamMisconfigured):
            await client.refresh(REFRESH_TOKEN)


class TestRevoke:
    async def test_request_shape_and_empty_200(
        self, client: Auth0AuthClient, auth0: respx.MockRouter, observed: list[tuple[str, str]]
    ) -> None:
        route = auth0.post("/oauth/revoke").respond(200, content=b"")

        await client.revoke(REFRESH_TOKEN)

        assert form(route.calls.last.request) == {
            "token": REFRESH_TOKEN,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        assert observed == [("oauth_revoke", "ok")]

    async def test_text_ok_body_is_fine(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        auth0.post("/oauth/revoke").respond(200, text="OK")
        await client.revoke(REFRESH_TOKEN)

    async def test_bad_client_is_misconfiguration(
        self, client: Auth0AuthClient, auth0: respx.MockRouter
    ) -> None:
        auth0.post("/oauth/revoke").mock(
            return_value=error(401, "invalid_client", "Client authentication failed")
        )
        with pytest.raises(UpstreamMisconfigured):
            await client.revoke(REFRESH_TOKEN)

    async def test_outage(self, client: Auth0AuthClient, auth0: respx.MockRouter) -> None:
        auth0.post("/oauth/revoke").respond(503, text="Service Unavailable")
        with pytest.raises(UpstreamUnavailable):
            await client.revoke(REFRESH_TOKEN)


class TestUserinfo:
    async def test_profile(self, client: Auth0AuthClient, auth0: respx.MockRouter) -> None:
        profile = {
            "sub": "auth0|1",
            "name": "Jane",
            "email": "jane@example.com",
            "updated_at": "2023-11-15T14:30:00.000Z",
        }
        route = auth0.get("/userinfo").respond(200, json=profile)

        assert await client.userinfo(ACCESS_TOKEN) == profile

        assert route.calls.last.request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"

    @pytest.mark.parametrize(
        ("challenge", "description"),
        [
            (
                'Bearer realm="Users", error="invalid_token", '
                'error_description="The token has expired"',
                "The access token has expired.",
            ),
            (
                'Bearer realm="Users", error="invalid_token", error_description="Invalid token"',
                "The access token is invalid.",
            ),
            ("", "The access token is invalid."),
        ],
    )
    async def test_plain_text_401(
        self,
        client: Auth0AuthClient,
        auth0: respx.MockRouter,
        challenge: str,
        description: str,
    ) -> None:
        headers = {"WWW-Authenticate": challenge} if challenge else {}
        auth0.get("/userinfo").respond(401, text="Unauthorized", headers=headers)
        with pytest.raises(Unauthorized) as caught:
            await client.userinfo(ACCESS_TOKEN)
        assert type(caught.value) is Unauthorized
        assert caught.value.code == "invalid_token"
        assert caught.value.description == description

    async def test_rate_limited(self, client: Auth0AuthClient, auth0: respx.MockRouter) -> None:
        auth0.get("/userinfo").respond(
            429, text="Too Many Requests", headers={"X-RateLimit-Reset": str(int(NOW) + 20)}
        )
        with pytest.raises(RateLimited) as caught:
            await client.userinfo(ACCESS_TOKEN)
        assert caught.value.headers["Retry-After"] == "20"

    @pytest.mark.parametrize(
        "response",
        [
            httpx.Response(200, text="not json"),
            httpx.Response(200, json=["sub"]),
            httpx.Response(200, json={"name": "no sub"}),
        ],
    )
    async def test_garbage(
        self, client: Auth0AuthClient, auth0: respx.MockRouter, response: httpx.Response
    ) -> None:
        auth0.get("/userinfo").mock(return_value=response)
        with pytest.raises(UpstreamUnavailable):
            await client.userinfo(ACCESS_TOKEN)


class TestClientCredentials:
    async def test_request_shape(self, client: Auth0AuthClient, auth0: respx.MockRouter) -> None:
        route = auth0.post("/oauth/token").respond(
            200,
            json={"access_token": "m2m", "expires_in": 86400, "token_type": "Bearer"},
        )
        audience = f"https://{DOMAIN}/api/v2/"

        tokens = await client.client_credentials(audience)

        assert form(route.calls.last.request) == {
            "grant_type": "client_credentials",
            "audience": audience,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        assert tokens.access_token == "m2m"
        assert tokens.refresh_token is None
        assert tokens.scope is None

    async def test_missing_client_grant(
        self, client: Auth0AuthClient, auth0: respx.MockRouter, caplog: pytest.LogCaptureFixture
    ) -> None:
        auth0.post("/oauth/token").mock(
            return_value=error(
                403,
                "access_denied",
                f'Client is not authorized to access "https://{DOMAIN}/api/v2/". You need to '
                'create a "client-grant" associated to this API.',
            )
        )
        with pytest.raises(UpstreamMisconfigured):
            await client.client_credentials(f"https://{DOMAIN}/api/v2/")
        assert "client grant" in caplog.text


class TestFetchJwks:
    async def test_document(self, client: Auth0AuthClient, auth0: respx.MockRouter) -> None:
        document = {"keys": [{"kty": "RSA", "kid": "k"}]}
        auth0.get("/.well-known/jwks.json").respond(200, json=document)
        assert await client.fetch_jwks() == document

    @pytest.mark.parametrize(
        "response",
        [
            httpx.Response(200, text="<html/>"),
            httpx.Response(200, json={"no": "keys"}),
            httpx.Response(404, text="Not Found"),
            httpx.Response(500, json={"error": "server_error"}),
        ],
    )
    async def test_failures(
        self, client: Auth0AuthClient, auth0: respx.MockRouter, response: httpx.Response
    ) -> None:
        auth0.get("/.well-known/jwks.json").mock(return_value=response)
        with pytest.raises(UpstreamUnavailable):
            await client.fetch_jwks()


class TestObserver:
    async def test_success_and_failure_are_counted(
        self, client: Auth0AuthClient, auth0: respx.MockRouter, observed: list[tuple[str, str]]
    ) -> None:
        auth0.get("/.well-known/jwks.json").respond(200, json={"keys": []})
        auth0.get("/userinfo").respond(401, text="Unauthorized")
        await client.fetch_jwks()
        with pytest.raises(Unauthorized):
            await client.userinfo(ACCESS_TOKEN)
        assert observed == [("jwks", "ok"), ("userinfo", "invalid_token")]

    async def test_a_failing_hook_never_breaks_a_call(
        self,
        http: httpx.AsyncClient,
        settings: Auth0Settings,
        auth0: respx.MockRouter,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        def broken(endpoint: str, outcome: str, seconds: float) -> None:
            raise RuntimeError("metrics backend gone")

        auth0.post("/oauth/token").respond(200, json=TOKEN_RESPONSE)
        tokens = await Auth0AuthClient(http, settings, on_call=broken).refresh(REFRESH_TOKEN)
        assert tokens.access_token == ACCESS_TOKEN
        assert "on_call hook failed" in caplog.text


class TestMisconfiguredSettings:
    async def test_missing_client_id_is_502_without_a_call(
        self, http: httpx.AsyncClient, settings: Auth0Settings, auth0: respx.MockRouter
    ) -> None:
        route = auth0.post("/oauth/token").respond(200, json=TOKEN_RESPONSE)
        client = Auth0AuthClient(http, settings.model_copy(update={"client_id": None}))
        with pytest.raises(UpstreamMisconfigured):
            await login(client)
        assert not route.called


class TestNothingSensitiveIsLogged:
    """Across every error path, no log record or raised error carries a credential."""

    async def test_error_paths(
        self, client: Auth0AuthClient, auth0: respx.MockRouter, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        calls: list[tuple[Callable[[], Awaitable[object]], str]] = [
            (lambda: login(client), PASSWORD),
            (lambda: client.refresh(REFRESH_TOKEN), REFRESH_TOKEN),
            (lambda: client.revoke(REFRESH_TOKEN), REFRESH_TOKEN),
            (lambda: client.userinfo(ACCESS_TOKEN), ACCESS_TOKEN),
        ]
        # each answer may echo what its own call sent (Auth0 knows nothing else)
        answers: list[Callable[[str], httpx.Response | Exception]] = [
            *[lambda sent, row=row: row[1] for row in LOGIN_ERRORS],
            lambda sent: httpx.ConnectError(f"refused {sent} {CLIENT_SECRET}"),
            lambda sent: httpx.ReadTimeout("timed out"),
            lambda sent: error(401, "invalid_client", f"bad secret {CLIENT_SECRET}"),
            lambda sent: error(403, "access_denied", f"rule says no to {sent}"),
            lambda sent: error(403, "invalid_grant", f"unknown token {sent}"),
            lambda sent: error(418, "odd", f"echo {sent} {CLIENT_SECRET}"),
            lambda sent: error(500, "server_error", f"crashed on {sent}"),
            lambda sent: httpx.Response(200, json={**TOKEN_RESPONSE, "expires_in": sent}),
            lambda sent: httpx.Response(200, json={**TOKEN_RESPONSE, "refresh_token": None}),
        ]
        raised: list[GatewayError] = []
        for answer in answers:
            for call, sent in calls:
                response = answer(sent)
                if isinstance(response, Exception):
                    auth0.route().mock(side_effect=response)
                else:
                    auth0.route().mock(return_value=response)
                try:
                    await call()
                except GatewayError as exc:
                    raised.append(exc)
                auth0.routes.clear()

        assert len(raised) > 4 * len(LOGIN_ERRORS)
        assert any(r.levelno >= logging.ERROR for r in caplog.records), "the error paths do log"
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        texts = [formatter.format(record) for record in caplog.records]
        texts += [f"{exc!r} {exc.description} {exc.headers} {exc.body()}" for exc in raised]
        for text in texts:
            for secret in SENSITIVE:
                assert secret not in text
