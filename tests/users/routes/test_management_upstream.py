"""The Management API behind ``/users``: its rate limit, its token, a grant lacking scopes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.auth.cipher import SessionCipher, generate_key
from app.cache import MemcachedCache, cache_key
from emulator.state import SigningKey
from tests.conftest import RunningEmulator
from tests.e2e.conftest import ADMIN, VIEWER, bearer, emulator_stats, login
from tests.servers import MemcachedProcess
from tests.users.routes.helpers import STRONG, new_email

USER_ROUTE = "/api/v2/users/{user_id}"


async def fault(emulator_http: httpx.AsyncClient, **spec: Any) -> None:
    """Register an emulator fault."""
    response = await emulator_http.post("/__emulator/faults", json=spec)
    assert response.status_code == 201


class TestRateLimit:
    async def test_self_service_answers_429_with_retry_after_not_500(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        token = await login(gateway, VIEWER)
        await fault(
            emulator_http, path=USER_ROUTE, status=429, count=5, headers={"Retry-After": "30"}
        )
        started = time.monotonic()
        response = await gateway.get("/users/me", headers=bearer(token))
        assert time.monotonic() - started < 1.5, "a user-facing route does not wait 30 s"
        assert response.status_code == 429
        assert response.json()["error"] == "too_many_requests"
        assert response.headers["retry-after"] == "30"

    async def test_sign_up_does_not_block_on_a_long_reset(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        reset = str(int(time.time()) + 20)
        await fault(
            emulator_http,
            path="/api/v2/users",
            status=429,
            count=3,
            body={
                "statusCode": 429,
                "error": "Too Many Requests",
                "message": "Global limit has been reached",
                "errorCode": "too_many_requests",
            },
            headers={"X-RateLimit-Reset": reset},
        )
        started = time.monotonic()
        response = await gateway.post(
            "/users", json={"email": new_email(), "password": STRONG, "name": "Jane"}
        )
        assert time.monotonic() - started < 1.5
        assert response.status_code == 429
        assert 15 <= int(response.headers["retry-after"]) <= 21

    async def test_admin_route_waits_out_a_short_limit(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        headers = bearer(await login(gateway, ADMIN))
        await fault(
            emulator_http, path=USER_ROUTE, status=429, count=2, headers={"Retry-After": "0"}
        )
        response = await gateway.get("/users/auth0%7Cdemo-viewer", headers=headers)
        assert response.status_code == 200
        requests = (await emulator_stats(emulator_http))["requests"]
        assert requests["GET /api/v2/users/{user_id}"] == 3

    async def test_the_tenants_own_limit_is_ridden_out(
        self,
        gateway_factory: Callable[..., Any],
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        client, _ = await gateway_factory()
        headers = bearer(await login(client, ADMIN))
        await client.get("/users/auth0%7Cdemo-viewer", headers=headers)  # token in hand
        emulator.tenant.management_limit.burst = 1
        emulator.tenant.management_limit.per_second = 10
        emulator.tenant.management_limit._level.clear()
        await emulator_http.post("/__emulator/stats/reset")
        responses = [
            await client.get("/users/auth0%7Cdemo-viewer", headers=headers) for _ in range(2)
        ]
        assert [r.status_code for r in responses] == [200, 200]
        requests = (await emulator_stats(emulator_http))["requests"]
        assert requests["GET /api/v2/users/{user_id}"] == 3, "one 429, waited out"


class TestManagementToken:
    async def test_fetched_once_for_concurrent_requests_and_every_worker(
        self,
        gateway_factory: Callable[..., Any],
        emulator_http: httpx.AsyncClient,
        memcached_server: MemcachedProcess,
    ) -> None:
        key = generate_key()
        first, settings = await gateway_factory(session={"keys": [key]})
        second, _ = await gateway_factory(
            session={"keys": [key]}, cache={"namespace": settings.cache.namespace}
        )
        token = await login(first, VIEWER)
        await emulator_http.post("/__emulator/stats/reset")

        responses = await asyncio.gather(
            *(first.get("/users/me", headers=bearer(token)) for _ in range(20))
        )
        assert {r.status_code for r in responses} == {200}
        assert (await second.get("/users/me", headers=bearer(token))).status_code == 200
        grants = (await emulator_stats(emulator_http))["grants"]
        assert grants.get("client_credentials") == 1

        # stored encrypted: no bearer token in the cache
        cache = MemcachedCache.from_url(memcached_server.url)
        try:
            stored = await cache.get(
                cache_key(settings.cache_namespace, "mgmt-token", "local-gateway")
            )
        finally:
            await cache.close()
        assert stored is not None
        plain = SessionCipher([key]).decrypt(stored)
        assert plain is not None, "readable with the session key only"
        management_token = json.loads(plain)["access_token"]
        assert management_token.count(".") == 2, "a JWT, so the check below means something"
        for part in management_token.split("."):
            assert part.encode() not in stored

    async def test_a_token_auth0_no_longer_accepts_is_replaced(
        self,
        gateway: httpx.AsyncClient,
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        token = await login(gateway, VIEWER)
        assert (await gateway.get("/users/me", headers=bearer(token))).status_code == 200
        # the tenant's keys were replaced: the cached Management token no longer verifies
        emulator.tenant.keys = [SigningKey.generate()]
        response = await gateway.get("/users/me", headers=bearer(token))
        assert response.status_code == 200
        grants = (await emulator_stats(emulator_http))["grants"]
        assert grants["client_credentials"] == 2


class TestMissingScope:
    async def test_is_502_and_a_loud_log_never_the_users_fault(
        self,
        gateway: httpx.AsyncClient,
        emulator: RunningEmulator,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        grant = next(
            g for g in emulator.tenant.client_grants.values() if g.client_id == "local-gateway"
        )
        grant.scope.remove("delete:users")
        token = await login(gateway, VIEWER)
        with caplog.at_level(logging.ERROR):
            response = await gateway.request(
                "DELETE", "/users/me", headers=bearer(token), json={"current_password": VIEWER[1]}
            )
        assert response.status_code == 502
        assert response.json()["error"] == "upstream_misconfigured"
        assert "auth0|demo-viewer" in emulator.tenant.users
        assert any(
            "MANAGEMENT API REFUSED" in r.getMessage() and "delete:users" in r.getMessage()
            for r in caplog.records
        )
