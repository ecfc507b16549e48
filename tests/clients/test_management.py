"""The Management API client with respx: errors, rate-limit waits, token renewal, paging."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
import respx

from app.auth.cipher import SessionCipher
from app.cache import MemoryCache
from app.clients.auth0 import TokenSet
from app.clients.management import INTERACTIVE, ManagementClient, RetryPolicy
from app.clients.management_errors import (
    ManagementBadRequest,
    ManagementConflict,
    ManagementNotFound,
    ManagementRateLimited,
    ManagementRefused,
    ManagementUnavailable,
)
from app.clients.management_tokens import ClientCredentialsTokens, StaticToken

BASE = "https://acme-dev.auth0.com"
API = f"{BASE}/api/v2"
NOW = 1_800_000_000.0


class FakeSleep:
    """Records waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


def client(
    http: httpx.AsyncClient, sleep: FakeSleep, retry: RetryPolicy = RetryPolicy(4, 10.0)
) -> ManagementClient:
    return ManagementClient(
        http, BASE, StaticToken("mgmt-token"), retry=retry, sleep=sleep, wall_clock=lambda: NOW
    )


def management_error(status: int, message: str, code: str | None = None) -> httpx.Response:
    body = {"statusCode": status, "error": "x", "message": message}
    if code:
        body["errorCode"] = code
    return httpx.Response(status, json=body)


class TestRequests:
    @respx.mock
    async def test_user_ids_are_url_encoded_and_the_token_sent(
        self, http: httpx.AsyncClient, sleep: FakeSleep
    ) -> None:
        route = respx.get(f"{API}/users/auth0%7Cabc%2Fdef").mock(
            return_value=httpx.Response(200, json={"user_id": "auth0|abc/def"})
        )
        user = await client(http, sleep).get_user("auth0|abc/def")
        assert user.user_id == "auth0|abc/def"
        assert route.calls.last.request.headers["authorization"] == "Bearer mgmt-token"
        assert route.calls.last.request.url.raw_path == b"/api/v2/users/auth0%7Cabc%2Fdef"

    @respx.mock
    async def test_lists_follow_pages(self, http: httpx.AsyncClient, sleep: FakeSleep) -> None:
        pages = [
            {"total": 51, "clients": [{"client_id": str(i)} for i in range(50)]},
            {"total": 51, "clients": [{"client_id": "50"}]},
        ]
        route = respx.get(f"{API}/clients").mock(
            side_effect=[httpx.Response(200, json=p) for p in pages]
        )
        clients = await client(http, sleep).list_clients()
        assert len(clients) == 51
        assert [c.request.url.params["page"] for c in route.calls] == ["0", "1"]

    @respx.mock
    async def test_delete_accepts_any_2xx(self, http: httpx.AsyncClient, sleep: FakeSleep) -> None:
        respx.delete(f"{API}/users/auth0%7Cx").mock(return_value=httpx.Response(200, text=""))
        await client(http, sleep).delete_user("auth0|x")


class TestErrors:
    @pytest.mark.parametrize(
        ("response", "error", "status", "code"),
        [
            (
                management_error(404, "The user does not exist.", "inexistent_user"),
                ManagementNotFound,
                404,
                "not_found",
            ),
            (
                management_error(409, "The user already exists.", "auth0_idp_error"),
                ManagementConflict,
                409,
                "conflict",
            ),
            (
                management_error(400, "PasswordStrengthError: Password is too weak"),
                ManagementBadRequest,
                400,
                "weak_password",
            ),
            (
                management_error(400, "Payload validation error", "invalid_body"),
                ManagementBadRequest,
                400,
                "invalid_request",
            ),
            (
                management_error(
                    403, "Insufficient scope, expected any of: read:users", "insufficient_scope"
                ),
                ManagementRefused,
                502,
                "upstream_misconfigured",
            ),
            (
                httpx.Response(500, text="<html>oops</html>"),
                ManagementUnavailable,
                503,
                "upstream_unavailable",
            ),
            (
                httpx.Response(400, json={"error": "invalid_request", "error_description": "bad"}),
                ManagementBadRequest,
                400,
                "invalid_request",
            ),
        ],
    )
    @respx.mock
    async def test_mapped_to_the_gateways_tree(
        self,
        http: httpx.AsyncClient,
        sleep: FakeSleep,
        response: httpx.Response,
        error: type[Exception],
        status: int,
        code: str,
    ) -> None:
        respx.get(f"{API}/users/u").mock(return_value=response)
        with pytest.raises(error) as caught:
            await client(http, sleep).get_user("u")
        assert caught.value.status_code == status  # type: ignore[attr-defined]
        assert caught.value.code == code  # type: ignore[attr-defined]
        assert caught.value.upstream is not None  # type: ignore[attr-defined]

    @respx.mock
    async def test_a_password_never_reaches_a_message(
        self, http: httpx.AsyncClient, sleep: FakeSleep
    ) -> None:
        respx.post(f"{API}/users").mock(
            return_value=management_error(400, "Payload error near 'Hunter2-secret'")
        )
        with pytest.raises(ManagementBadRequest) as caught:
            await client(http, sleep).create_user(
                {"password": "Hunter2-secret"}, sensitive=["Hunter2-secret"]
            )
        assert "Hunter2-secret" not in caught.value.description

    @respx.mock
    async def test_transport_failure_is_503(
        self, http: httpx.AsyncClient, sleep: FakeSleep
    ) -> None:
        respx.get(f"{API}/users/u").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(ManagementUnavailable):
            await client(http, sleep).get_user("u")


class TestRateLimit:
    @respx.mock
    async def test_waits_as_retry_after_says_then_succeeds(
        self, http: httpx.AsyncClient, sleep: FakeSleep
    ) -> None:
        respx.get(f"{API}/users/u").mock(
            side_effect=[
                httpx.Response(429, headers={"Retry-After": "2"}),
                httpx.Response(200, json={"user_id": "u"}),
            ]
        )
        assert (await client(http, sleep).get_user("u")).user_id == "u"
        assert sleep.waits == [2.0]

    @respx.mock
    async def test_x_ratelimit_reset_is_epoch_seconds(
        self, http: httpx.AsyncClient, sleep: FakeSleep
    ) -> None:
        respx.get(f"{API}/users/u").mock(
            side_effect=[
                httpx.Response(429, headers={"X-RateLimit-Reset": str(int(NOW) + 3)}),
                httpx.Response(200, json={"user_id": "u"}),
            ]
        )
        await client(http, sleep).get_user("u")
        assert sleep.waits == [3.0]

    @respx.mock
    async def test_retry_after_as_an_http_date(
        self, http: httpx.AsyncClient, sleep: FakeSleep
    ) -> None:
        when = format_datetime(datetime.fromtimestamp(NOW + 4, tz=UTC), usegmt=True)
        respx.get(f"{API}/users/u").mock(
            side_effect=[
                httpx.Response(429, headers={"Retry-After": when}),
                httpx.Response(200, json={"user_id": "u"}),
            ]
        )
        await client(http, sleep).get_user("u")
        assert sleep.waits == [4.0]

    @respx.mock
    async def test_bounded_by_attempts(self, http: httpx.AsyncClient, sleep: FakeSleep) -> None:
        route = respx.get(f"{API}/users/u").mock(
            return_value=httpx.Response(429, headers={"Retry-After": "1"})
        )
        with pytest.raises(ManagementRateLimited) as caught:
            await client(http, sleep, RetryPolicy(3, 60)).get_user("u")
        assert route.call_count == 3
        assert sleep.waits == [1.0, 1.0]
        assert caught.value.headers["Retry-After"] == "1"

    @respx.mock
    async def test_bounded_by_total_wait(self, http: httpx.AsyncClient, sleep: FakeSleep) -> None:
        route = respx.get(f"{API}/users/u").mock(
            return_value=httpx.Response(429, headers={"Retry-After": "30"})
        )
        with pytest.raises(ManagementRateLimited) as caught:
            await client(http, sleep, INTERACTIVE).get_user("u")
        assert route.call_count == 1
        assert sleep.waits == []
        assert caught.value.status_code == 429
        assert caught.value.headers["Retry-After"] == "30"


class TestTokens:
    @respx.mock
    async def test_a_refused_token_is_renewed_once(
        self, http: httpx.AsyncClient, sleep: FakeSleep
    ) -> None:
        issued = iter(["first", "second", "third"])

        async def fetch() -> TokenSet:
            return TokenSet(access_token=next(issued), expires_in=86400)

        tokens = ClientCredentialsTokens(fetch, client_id="gw")
        route = respx.get(f"{API}/users/u").mock(
            side_effect=[
                management_error(401, "Invalid token."),
                httpx.Response(200, json={"user_id": "u"}),
            ]
        )
        api = ManagementClient(http, BASE, tokens, sleep=sleep)
        await api.get_user("u")
        sent = [c.request.headers["authorization"] for c in route.calls]
        assert sent == ["Bearer first", "Bearer second"]

    @respx.mock
    async def test_a_second_refusal_is_502(self, http: httpx.AsyncClient, sleep: FakeSleep) -> None:
        respx.get(f"{API}/users/u").mock(return_value=management_error(401, "Invalid token."))
        with pytest.raises(ManagementRefused):
            await client(http, sleep).get_user("u")

    async def test_fetched_once_under_concurrency_and_shared_encrypted(self) -> None:
        calls = 0

        async def fetch() -> TokenSet:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.01)
            return TokenSet(access_token="eyJ.secret.token", expires_in=86400)

        cache = MemoryCache()
        cipher = SessionCipher.ephemeral()
        first = ClientCredentialsTokens(fetch, client_id="gw", cache=cache, cipher=cipher)
        got = await asyncio.gather(*(first.get() for _ in range(20)))
        assert set(got) == {"eyJ.secret.token"}
        second = ClientCredentialsTokens(fetch, client_id="gw", cache=cache, cipher=cipher)
        assert await second.get() == "eyJ.secret.token"
        assert calls == 1
        stored = [value for value, _ in cache._items.values()]
        assert stored
        assert all(b"secret" not in value for value in stored)

    async def test_kept_until_a_minute_before_expiry(self) -> None:
        now = [NOW]
        issued = iter(["a", "b"])

        async def fetch() -> TokenSet:
            return TokenSet(access_token=next(issued), expires_in=3600)

        tokens = ClientCredentialsTokens(fetch, client_id="gw", clock=lambda: now[0])
        assert await tokens.get() == "a"
        now[0] += 3600 - 61
        assert await tokens.get() == "a"
        now[0] += 2
        assert await tokens.get() == "b"

    def test_a_shared_cache_needs_the_cipher(self) -> None:
        async def fetch() -> TokenSet:
            raise AssertionError

        with pytest.raises(ValueError, match="cipher"):
            ClientCredentialsTokens(fetch, client_id="gw", cache=MemoryCache())


def test_error_bodies_are_parsed_in_both_shapes() -> None:
    from app.clients.management_errors import ManagementErrorBody

    management = ManagementErrorBody.from_response(
        management_error(403, "Insufficient scope", "insufficient_scope")
    )
    assert management.describe() == "403 insufficient_scope: Insufficient scope"
    authentication = ManagementErrorBody.from_response(
        httpx.Response(429, content=json.dumps({"error": "too_many_requests"}).encode())
    )
    assert (authentication.status, authentication.error) == (429, "too_many_requests")
