"""The gateway keeps serving when memcached or Auth0 go away, and never leaks a raw token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import RunningEmulator
from tests.e2e.conftest import VIEWER, bearer, login
from tests.servers import MemcachedProcess

pytestmark = pytest.mark.resilience


class TestMemcachedOutage:
    async def test_requests_keep_succeeding_and_hits_resume(
        self,
        gateway_factory: Callable[..., Any],
        memcached: MemcachedProcess,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        # no in-process tier, so every request goes to memcached
        client, _ = await gateway_factory(
            cache_url=memcached.url, cache={"local_ttl_s": 0, "timeout_s": 0.2}
        )
        token = await login(client)
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200

        memcached.stop()
        for _ in range(5):
            response = await client.get("/auth/me", headers=bearer(token))
            assert response.status_code == 200, response.text

        memcached.start()
        await client.get("/auth/me", headers=bearer(token))  # revalidated and stored again
        await emulator_http.post("/__emulator/stats/reset")
        await emulator_http.post(
            "/__emulator/faults", json={"path": "/userinfo", "status": 503, "count": 100}
        )
        for _ in range(3):
            assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
        assert memcached.keys(), "the restarted memcached holds the principal again"
        stats = (await emulator_http.get("/__emulator/stats")).json()
        assert stats["requests"].get("GET /userinfo", 0) == 0, "hits must come from memcached"

    async def test_login_works_without_memcached(
        self, gateway_factory: Callable[..., Any], memcached: MemcachedProcess
    ) -> None:
        client, _ = await gateway_factory(cache_url=memcached.url, cache={"timeout_s": 0.2})
        memcached.stop()
        response = await client.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert response.status_code == 200
        token = response.json()["access_token"]
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200

    async def test_a_session_from_before_the_outage_refreshes_during_it(
        self,
        gateway_factory: Callable[..., Any],
        memcached: MemcachedProcess,
        emulator: RunningEmulator,
    ) -> None:
        client, _ = await gateway_factory(cache_url=memcached.url, cache={"timeout_s": 0.2})
        old = await login(client, VIEWER)
        memcached.stop()
        emulator.tenant.clock_offset_s += 1  # a new token, not the same one again
        response = await client.post("/auth/refresh", headers=bearer(old))
        assert response.status_code == 200, response.text
        new = response.json()["access_token"]
        assert new != old
        assert (await client.get("/auth/me", headers=bearer(new))).status_code == 200
        assert (await client.post("/auth/logout", headers=bearer(new))).status_code == 204
        assert (await client.get("/auth/me", headers=bearer(new))).status_code == 401


class TestAuth0Outage:
    async def test_cached_tokens_still_served_new_ones_get_503(
        self,
        gateway_factory: Callable[..., Any],
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        gateway, _ = await gateway_factory(auth0={"accept_opaque_tokens": True})
        token = await login(gateway)
        fresh = await emulator_http.post(
            "/oauth/token",
            json={
                "grant_type": "password",
                "username": VIEWER[0],
                "password": VIEWER[1],
                "client_id": "local-gateway",
                "client_secret": "local-gateway-secret",
                "scope": "openid",
            },
        )
        opaque = fresh.json()["access_token"]
        emulator.server.stop()

        assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
        login_response = await gateway.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert login_response.status_code == 503
        assert int(login_response.headers["retry-after"]) > 0
        new_token = await gateway.get("/auth/me", headers=bearer(opaque))
        assert new_token.status_code == 503
        assert int(new_token.headers["retry-after"]) > 0

    async def test_upstream_stall_is_cut_by_the_timeout(
        self, gateway_factory: Callable[..., Any], emulator_http: httpx.AsyncClient
    ) -> None:
        client, _ = await gateway_factory(auth0={"timeout_s": 0.5})
        await emulator_http.post(
            "/__emulator/faults",
            json={"path": "/oauth/token", "status": None, "count": 1, "delay_ms": 2000},
        )
        response = await client.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert response.status_code == 503


class TestCacheKeys:
    async def test_memcached_holds_no_raw_token(
        self, gateway_factory: Callable[..., Any], memcached: MemcachedProcess
    ) -> None:
        client, settings = await gateway_factory(cache_url=memcached.url)
        token = await login(client)
        refreshed = await client.post("/auth/refresh", headers=bearer(token))
        new = refreshed.json()["access_token"]
        await client.get("/auth/me", headers=bearer(new))
        keys = memcached.keys()
        assert keys, "the flow must have written to memcached"
        namespace = settings.cache.namespace
        for key in keys:
            assert token not in key
            assert new not in key
            assert len(key) <= 250
            prefix, _kind, digest = key.split(":")
            assert prefix == namespace
            assert len(digest) == 64


class TestLogoutWithoutMemcached:
    async def test_a_logout_goes_through_the_database(
        self, gateway_factory: Callable[..., Any], memcached: MemcachedProcess
    ) -> None:
        client, _ = await gateway_factory(cache_url=memcached.url, cache={"timeout_s": 0.2})
        token = await login(client)
        memcached.stop()
        response = await client.post("/auth/logout", headers=bearer(token))
        assert response.status_code == 204
        memcached.start()
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401
        assert (await client.post("/auth/refresh", headers=bearer(token))).status_code == 401
