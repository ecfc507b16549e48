"""The Management API's cross-cutting behaviour: tokens, scopes, rate limit, error shapes."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from emulator.state import ListLimits, ResourceServer, Tenant
from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import client_for, login
from tests.emulator.management_helpers import (
    Factory,
    assert_management_error,
    client_with_scopes,
    management_client,
    management_tenant,
    management_token,
)

# A live tenant-wide 429's message (auth0-extensions/auth0-reset-tenant#31).
RATE_LIMITED = "Global limit has been reached"


class TestAuthentication:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer not-a-jwt"},
            {"Authorization": "Basic bG9jYWwtZ2F0ZXdheTpsb2NhbC1nYXRld2F5LXNlY3JldA=="},
        ],
    )
    async def test_missing_or_garbage_token(
        self, shared: tuple[RunningEmulator, str], headers: dict[str, str]
    ) -> None:
        running = shared[0]
        async with management_client(running, None) as api:
            response = await api.get("/users", headers=headers)
        assert_management_error(
            response, 401, "Invalid token.", None, attributes={"error": "Invalid token."}
        )

    async def test_token_for_another_audience(self, shared: tuple[RunningEmulator, str]) -> None:
        running = shared[0]
        async with client_for(running) as http:
            user_token = (await login(http))["access_token"]
        async with management_client(running, user_token) as api:
            response = await api.get("/users")
        assert_management_error(
            response, 401, "Invalid token.", None, attributes={"error": "Invalid token."}
        )

    async def test_expired_token(self, running: RunningEmulator) -> None:
        token = await management_token(running)
        async with client_for(running) as http:
            moved = await http.post("/__emulator/clock", json={"offset_s": 2 * 86400})
            assert moved.status_code == 200
        async with management_client(running, token) as api:
            response = await api.get("/users")
        message = "Expired token received for JSON Web Token validation"
        assert_management_error(response, 401, message, None, attributes={"error": message})

    async def test_token_from_the_grant_works(self, shared: tuple[RunningEmulator, str]) -> None:
        running = shared[0]
        async with management_client(running, await management_token(running)) as api:
            response = await api.get("/users")
        assert response.status_code == 200


class TestScopes:
    async def test_route_without_its_scope(self, running: RunningEmulator) -> None:
        # The demo grant has no delete:clients.
        async with management_client(running, await management_token(running)) as api:
            response = await api.delete("/clients/local-gateway")
        assert_management_error(
            response,
            403,
            "Insufficient scope, expected any of: delete:clients",
            "insufficient_scope",
        )
        assert running.tenant.clients.get("local-gateway") is not None

    async def test_scopes_are_per_route(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        token = await client_with_scopes(api, running, ["read:users"])
        async with management_client(running, token) as limited:
            users = await limited.get("/users")
            clients = await limited.get("/clients")
            create = await limited.post("/users", json={"connection": "x"})
        assert users.status_code == 200
        assert_management_error(
            clients, 403, "Insufficient scope, expected any of: read:clients", "insufficient_scope"
        )
        assert_management_error(
            create, 403, "Insufficient scope, expected any of: create:users", "insufficient_scope"
        )

    async def test_scope_is_checked_before_the_body(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        token = await client_with_scopes(api, running, ["read:users"])
        async with management_client(running, token) as limited:
            response = await limited.post("/clients", content=b"{not json")
        assert response.status_code == 403


class TestRateLimit:
    async def test_burst_then_429_then_refill(self, emulator_factory: Factory) -> None:
        running = emulator_factory(
            management_tenant(management_enabled=True, management_burst=2, management_per_second=1)
        )
        token = await management_token(running)  # the Authentication API is not counted
        async with management_client(running, token) as api:
            first = await api.get("/users")
            second = await api.get("/users/auth0%7Cdemo-admin")
            third = await api.get("/users")
            assert [first.status_code, second.status_code] == [200, 200]
            assert first.headers["X-RateLimit-Limit"] == "2"
            assert first.headers["X-RateLimit-Remaining"] == "1"
            assert second.headers["X-RateLimit-Remaining"] == "0"
            assert_management_error(third, 429, RATE_LIMITED, "too_many_requests")
            assert third.headers["X-RateLimit-Limit"] == "2"
            assert third.headers["X-RateLimit-Remaining"] == "0"
            reset = int(third.headers["X-RateLimit-Reset"])
            assert time.time() < reset <= time.time() + 4
            await asyncio.sleep(1.1)  # one token back at 1/s
            again = await api.get("/users")
        assert again.status_code == 200

    async def test_every_route_shares_the_tenant_bucket(self, emulator_factory: Factory) -> None:
        running = emulator_factory(
            management_tenant(
                management_enabled=True, management_burst=2, management_per_second=0.5
            )
        )
        async with management_client(running, await management_token(running)) as api:
            statuses = [
                (await api.get("/clients")).status_code,
                (await api.get("/tenants/settings")).status_code,
                (await api.get("/resource-servers")).status_code,
            ]
        async with management_client(running, None) as anonymous:
            unauthenticated = await anonymous.get("/users")
        assert statuses == [200, 200, 429]
        assert unauthenticated.status_code == 429

    async def test_limit_off(self, shared_api: httpx.AsyncClient) -> None:
        responses = [await shared_api.get("/users") for _ in range(8)]
        assert {r.status_code for r in responses} == {200}
        assert all("X-RateLimit-Reset" in r.headers for r in responses)

    async def test_demo_default_is_two_per_second(self, emulator: RunningEmulator) -> None:
        async with management_client(emulator, await management_token(emulator)) as api:
            statuses = [(await api.get("/users")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


class TestErrorShape:
    async def test_malformed_json(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.post(
            "/users", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert_management_error(
            response, 400, "Invalid request payload JSON format", "invalid_body"
        )

    async def test_body_must_be_an_object(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.post("/clients", json=["name"])
        assert_management_error(
            response,
            400,
            "Payload validation error: 'Expected type object but found type array'.",
            "invalid_body",
        )

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            (
                {"per_page": "many"},
                "Query validation error: 'Expected type integer but found type string' "
                "on property per_page.",
            ),
            (
                {"include_totals": "maybe"},
                "Query validation error: 'Expected type boolean but found type string' "
                "on property include_totals.",
            ),
            (
                {"page": "-1"},
                "Query validation error: 'Value -1 is less than minimum 0' on property page.",
            ),
        ],
    )
    async def test_query_errors(
        self, shared_api: httpx.AsyncClient, params: dict[str, str], message: str
    ) -> None:
        response = await shared_api.get("/users", params=params)
        assert_management_error(response, 400, message, "invalid_query_string")

    async def test_unknown_route(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.get("/no-such-thing")
        assert_management_error(response, 404, "Not Found", "not_found")

    async def test_authentication_api_keeps_its_own_shape(
        self, shared: tuple[RunningEmulator, str]
    ) -> None:
        running = shared[0]
        async with client_for(running) as http:
            response = await http.post("/oauth/token", json={"grant_type": "password"})
        body = response.json()
        assert "error" in body
        assert "statusCode" not in body

    async def test_requests_are_counted_by_route_template(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        await api.get("/users/auth0%7Cdemo-admin")
        async with client_for(running) as http:
            stats = (await http.get("/__emulator/stats")).json()
        assert stats["requests"]["GET /api/v2/users/{user_id}"] == 1


class TestPagingLimits:
    """Docs ``api/management/v2`` (``per_page``/``take`` at most 50 on Public Cloud) and
    ``migrate-to-paginated-queries`` (an unpaginated list returns at most 50 items)."""

    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("/clients", {"per_page": 51}),
            ("/resource-servers", {"per_page": 51}),
            ("/client-grants", {"per_page": 51}),
            ("/client-grants", {"take": 51}),
            ("/users/auth0%7Cdemo-admin/permissions", {"per_page": 51}),
        ],
    )
    async def test_fifty_a_page_at_most(
        self, shared_api: httpx.AsyncClient, path: str, params: dict[str, int]
    ) -> None:
        response = await shared_api.get(path, params=params)
        name = next(iter(params))
        assert_management_error(
            response,
            400,
            f"Query validation error: 'Value 51 is greater than maximum 50' on property {name}.",
            "invalid_query_string",
        )

    async def test_an_unpaginated_list_stops_at_fifty(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        for i in range(60):
            identifier = f"https://api-{i:02d}.example"
            running.tenant.resource_servers[identifier] = ResourceServer(identifier, f"API {i}")
        total = len(running.tenant.resource_servers)
        bare = await api.get("/resource-servers")
        totals = await api.get("/resource-servers", params={"include_totals": "true"})
        paged = await api.get("/resource-servers", params={"page": 1, "per_page": 50})
        assert len(bare.json()) == 50
        body = totals.json()
        assert (body["start"], body["limit"], body["total"]) == (0, 50, total)
        assert len(body["resource_servers"]) == 50
        assert len(paged.json()) == total - 50

    def test_the_defaults_are_auth0s(self) -> None:
        tenant = Tenant.from_file(None, "http://emulator.test/")
        assert tenant.list_limits == ListLimits(
            per_page_max=50, unpaginated_max=50, users_listed_max=1000
        )

    async def test_the_tenant_file_raises_the_page_size(self, emulator_factory: Factory) -> None:
        running = emulator_factory(
            management_tenant(management_per_page_max=100, management_unpaginated_max=70)
        )
        for i in range(120):
            identifier = f"https://api-{i:03d}.example"
            running.tenant.resource_servers[identifier] = ResourceServer(identifier, f"API {i}")
        async with management_client(running, await management_token(running)) as api:
            hundred = await api.get("/resource-servers", params={"per_page": 100})
            bare = await api.get("/resource-servers")
            users = await api.get("/users", params={"per_page": 100})
            grants = await api.get("/client-grants", params={"take": 100})
            over = await api.get("/resource-servers", params={"per_page": 101})
            users_over = await api.get("/users", params={"per_page": 101})
            take_over = await api.get("/client-grants", params={"take": 101})
        assert len(hundred.json()) == 100
        assert len(bare.json()) == 70
        assert users.status_code == 200
        assert grants.status_code == 200
        for response, name in [(over, "per_page"), (users_over, "per_page"), (take_over, "take")]:
            assert_management_error(
                response,
                400,
                f"Query validation error: 'Value 101 is greater than maximum 100' "
                f"on property {name}.",
                "invalid_query_string",
            )

    @pytest.mark.parametrize(
        "limits",
        [
            {"management_per_page_max": 0},
            {"management_unpaginated_max": -1},
            {"users_listed_max": "1000"},
            {"brute_force_block_s": True},
        ],
    )
    def test_the_tenant_file_refuses_a_limit_below_one(self, limits: dict[str, object]) -> None:
        name = next(iter(limits))
        with pytest.raises(ValueError, match=f"limits.{name} must be a whole number"):
            Tenant.from_dict(management_tenant(**limits), "http://emulator.test/")
