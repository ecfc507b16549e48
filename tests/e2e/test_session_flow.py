"""Login, /auth/me, refresh (also after expiry), logout: over a real memcached and the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import RunningEmulator
from tests.e2e.conftest import ADMIN, VIEWER, bearer, emulator_stats, login


class TestLogin:
    async def test_json_login_returns_only_the_public_fields(
        self, gateway: httpx.AsyncClient
    ) -> None:
        response = await gateway.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert body["token_type"] == "Bearer"
        assert 0 < body["expires_in"] <= 3600
        assert "read:venues" in body["scope"]
        assert response.headers["cache-control"] == "no-store"

    async def test_form_login_as_the_docs_page_sends_it(self, gateway: httpx.AsyncClient) -> None:
        response = await gateway.post(
            "/auth/login",
            data={"grant_type": "password", "username": ADMIN[0], "password": ADMIN[1]},
        )
        assert response.status_code == 200
        assert "delete:venues" in response.json()["scope"]

    async def test_wrong_password_is_401_invalid_grant(self, gateway: httpx.AsyncClient) -> None:
        response = await gateway.post(
            "/auth/login", json={"username": VIEWER[0], "password": "wrong"}
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_grant"
        assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_brute_force_block_is_429_with_retry_after(
        self, gateway: httpx.AsyncClient
    ) -> None:
        for _ in range(10):
            await gateway.post("/auth/login", json={"username": VIEWER[0], "password": "nope"})
        response = await gateway.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert response.status_code == 429
        assert response.json()["error"] == "too_many_attempts"
        assert int(response.headers["retry-after"]) > 0

    async def test_blocked_user_is_403(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        emulator.tenant.users["auth0|demo-viewer"].blocked = True
        response = await gateway.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert response.status_code == 403
        assert response.json()["error"] == "user_blocked"

    async def test_bad_client_secret_is_502_not_the_users_fault(
        self, gateway_factory: Callable[..., Any]
    ) -> None:
        client, _ = await gateway_factory(auth0={"client_secret": "not-the-secret"})
        response = await client.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert response.status_code == 502
        assert response.json()["error"] == "upstream_misconfigured"

    async def test_api_without_offline_access_is_502(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        emulator.tenant.resource_servers["https://api.venues.local"].allow_offline_access = False
        response = await gateway.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert response.status_code == 502

    async def test_bad_bodies_are_4xx_in_the_one_shape(self, gateway: httpx.AsyncClient) -> None:
        cases: list[dict[str, Any]] = [
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            {"content": b"[1, 2]", "headers": {"content-type": "application/json"}},
            {"json": {"username": VIEWER[0]}},
            {"json": {"username": "", "password": ""}},
            {"json": {"username": 5, "password": ["x"]}},
            {"content": b"username=a", "headers": {"content-type": "text/plain"}},
            {"json": {"username": "a" * 400, "password": "x"}},
            {"content": b"x" * 20000, "headers": {"content-type": "application/json"}},
        ]
        for case in cases:
            response = await gateway.post("/auth/login", **case)
            assert 400 <= response.status_code < 500, (case, response.text)
            body = response.json()
            assert set(body) - {"details"} == {"error", "error_description"}


class TestMe:
    async def test_me_after_login(self, gateway: httpx.AsyncClient) -> None:
        token = await login(gateway, VIEWER)
        response = await gateway.get("/auth/me", headers=bearer(token))
        assert response.status_code == 200
        me = response.json()
        assert me["sub"] == "auth0|demo-viewer"
        assert me["email"] == VIEWER[0]
        assert me["permissions"] == ["read:venues"]

    async def test_anonymous_is_401_with_a_challenge(self, gateway: httpx.AsyncClient) -> None:
        response = await gateway.get("/auth/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="venue-gateway"'
        assert response.json()["error"] == "invalid_request"

    async def test_login_primes_the_cache_so_no_userinfo_is_needed(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        token = await login(gateway)
        await emulator_http.post("/__emulator/stats/reset")
        for _ in range(5):
            assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
        assert (await emulator_stats(emulator_http))["requests"] == {}


class TestRefresh:
    async def test_refresh_gives_a_new_working_token(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        old = await login(gateway)
        response = await gateway.post("/auth/refresh", headers=bearer(old))
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        new = body["access_token"]
        assert new != old
        assert (await gateway.get("/auth/me", headers=bearer(new))).status_code == 200
        stats = await emulator_stats(emulator_http)
        assert stats["grants"].get("refresh_token") == 1

    async def test_refresh_after_the_access_token_expired(
        self, gateway_factory: Callable[..., Any], emulator: RunningEmulator
    ) -> None:
        emulator.tenant.resource_servers["https://api.venues.local"].token_lifetime = 2
        client, _ = await gateway_factory(auth0={"leeway_s": 0})
        old = await login(client)
        assert (await client.get("/auth/me", headers=bearer(old))).status_code == 200
        await asyncio.sleep(2.5)
        expired = await client.get("/auth/me", headers=bearer(old))
        assert expired.status_code == 401
        response = await client.post("/auth/refresh", headers=bearer(old))
        assert response.status_code == 200, response.text
        new = response.json()["access_token"]
        assert (await client.get("/auth/me", headers=bearer(new))).status_code == 200

    async def test_refresh_hours_later_on_the_emulators_clock(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        old = await login(gateway)
        # two hours on at Auth0: the access token is long expired there, the refresh token lives
        await emulator_http.post("/__emulator/clock", json={"offset_s": 7200})
        response = await gateway.post("/auth/refresh", headers=bearer(old))
        assert response.status_code == 200, response.text

    async def test_chained_refreshes_follow_rotation(self, gateway: httpx.AsyncClient) -> None:
        token = await login(gateway)
        for _ in range(3):
            response = await gateway.post("/auth/refresh", headers=bearer(token))
            assert response.status_code == 200
            token = response.json()["access_token"]
        assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200

    async def test_twenty_concurrent_refreshes_make_one_exchange(
        self,
        gateway: httpx.AsyncClient,
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        old = await login(gateway)
        await emulator_http.post("/__emulator/stats/reset")
        responses = await asyncio.gather(
            *(gateway.post("/auth/refresh", headers=bearer(old)) for _ in range(20))
        )
        assert {r.status_code for r in responses} == {200}
        assert len({r.json()["access_token"] for r in responses}) == 1
        stats = await emulator_stats(emulator_http)
        assert stats["grants"].get("refresh_token") == 1
        live = [t for t in emulator.tenant.refresh_tokens.values() if emulator.tenant.is_live(t)]
        assert len(live) == 1, "the family must still be alive (no reuse detected)"
        new = responses[0].json()["access_token"]
        again = await gateway.post("/auth/refresh", headers=bearer(new))
        assert again.status_code == 200

    async def test_repeat_within_grace_gets_the_same_answer_then_401(
        self, gateway_factory: Callable[..., Any]
    ) -> None:
        client, _ = await gateway_factory(session={"refresh_grace_s": 1})
        old = await login(client)
        first = await client.post("/auth/refresh", headers=bearer(old))
        repeat = await client.post("/auth/refresh", headers=bearer(old))
        assert repeat.json()["access_token"] == first.json()["access_token"]
        await asyncio.sleep(2.1)
        late = await client.post("/auth/refresh", headers=bearer(old))
        assert late.status_code == 401
        assert late.json()["error"] == "invalid_grant"

    async def test_refresh_rejected_by_auth0_ends_the_session(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        old = await login(gateway)
        emulator.tenant.users.pop("auth0|demo-viewer")
        response = await gateway.post("/auth/refresh", headers=bearer(old))
        assert response.status_code == 401
        again = await gateway.post("/auth/refresh", headers=bearer(old))
        assert again.status_code == 401

    async def test_network_failure_keeps_the_session(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        old = await login(gateway)
        await emulator_http.post(
            "/__emulator/faults", json={"path": "/oauth/token", "status": 503, "count": 1}
        )
        failed = await gateway.post("/auth/refresh", headers=bearer(old))
        assert failed.status_code == 503
        assert int(failed.headers["retry-after"]) > 0
        retried = await gateway.post("/auth/refresh", headers=bearer(old))
        assert retried.status_code == 200

    async def test_garbage_and_unknown_tokens_cannot_refresh(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        token = await login(gateway)
        await emulator_http.post("/__emulator/stats/reset")
        for bad in ("garbage", token + "x", "a.b.c"):
            response = await gateway.post("/auth/refresh", headers=bearer(bad))
            assert response.status_code == 401
        assert (await emulator_stats(emulator_http))["requests"] == {}


class TestLogout:
    async def test_logout_ends_everything(
        self,
        gateway: httpx.AsyncClient,
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        token = await login(gateway)
        assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
        await emulator_http.post("/__emulator/stats/reset")
        response = await gateway.post("/auth/logout", headers=bearer(token))
        assert response.status_code == 204
        assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 401
        assert (await gateway.post("/auth/refresh", headers=bearer(token))).status_code == 401
        stats = await emulator_stats(emulator_http)
        assert stats["requests"].get("POST /oauth/revoke") == 1
        assert not any(emulator.tenant.is_live(t) for t in emulator.tenant.refresh_tokens.values())

    async def test_logout_is_seen_by_another_gateway_instance(
        self, gateway_factory: Callable[..., Any]
    ) -> None:
        first, settings = await gateway_factory(cache={"local_ttl_s": 0})
        second, _ = await gateway_factory(
            cache={"namespace": settings.cache.namespace, "local_ttl_s": 0}
        )
        token = await login(first)
        assert (await second.get("/auth/me", headers=bearer(token))).status_code == 200
        assert (await first.post("/auth/logout", headers=bearer(token))).status_code == 204
        assert (await second.get("/auth/me", headers=bearer(token))).status_code == 401


class TestSameSecondLogins:
    async def test_identical_tokens_leave_one_live_refresh_token(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        tenant = emulator.tenant

        def live() -> set[str]:
            return {key for key, t in tenant.refresh_tokens.items() if tenant.is_live(t)}

        # Auth0 tokens carry no jti: two logins in one second may get the same access token.
        # A pair that straddles a second (a slow machine) makes two good sessions: left live.
        for _ in range(5):
            before = live()
            first, second = await asyncio.gather(login(gateway), login(gateway))
            if first == second:
                break
        else:
            raise AssertionError("five pairs of concurrent logins never shared a second")
        assert len(live() - before) == 1, "the overwritten session's refresh token must be revoked"
        assert (await gateway.post("/auth/logout", headers=bearer(first))).status_code == 204
        assert live() == before


class TestRaces:
    async def test_a_logout_during_a_slow_validation_holds(
        self, gateway_factory: Callable[..., Any], emulator_http: httpx.AsyncClient
    ) -> None:
        client, _ = await gateway_factory(cache={"local_ttl_s": 0})
        other, _ = await gateway_factory(cache={"local_ttl_s": 0})
        token = await login(client)
        # a second gateway instance has no profile cached: its validation waits on /userinfo
        await emulator_http.post(
            "/__emulator/faults",
            json={"path": "/userinfo", "status": None, "count": 1, "delay_ms": 800},
        )
        direct = await emulator_http.post(
            "/oauth/token",
            json={
                "grant_type": "http://auth0.com/oauth/grant-type/password-realm",
                "realm": "Username-Password-Authentication",
                "username": ADMIN[0],
                "password": ADMIN[1],
                "client_id": "local-gateway",
                "client_secret": "local-gateway-secret",
                "audience": "https://api.venues.local",
                "scope": "openid profile email",
            },
        )
        slow_token = direct.json()["access_token"]
        in_flight = asyncio.create_task(other.get("/auth/me", headers=bearer(slow_token)))
        await asyncio.sleep(0.3)
        assert (await other.post("/auth/logout", headers=bearer(slow_token))).status_code == 204
        await in_flight
        assert (await other.get("/auth/me", headers=bearer(slow_token))).status_code == 401
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200

    async def test_a_refresh_that_cannot_check_the_new_token_keeps_the_session(
        self,
        gateway_factory: Callable[..., Any],
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        # no pause between key-set refetches, so the retry below may fetch the new key
        gateway, _ = await gateway_factory(auth0={"jwks_min_refetch_interval_s": 0})
        old = await login(gateway)
        # new tokens are signed with a key the gateway cannot fetch right now (one never
        # published: the next key of a rotation would already be in its cached key set)
        await emulator_http.post("/__emulator/keys/replace-current")
        await emulator_http.post(
            "/__emulator/faults",
            json={"path": "/.well-known/jwks.json", "status": 503, "count": 1},
        )
        failed = await gateway.post("/auth/refresh", headers=bearer(old))
        assert failed.status_code == 503
        live = [t for t in emulator.tenant.refresh_tokens.values() if emulator.tenant.is_live(t)]
        assert len(live) == 1, "the rotated refresh token must still be usable"
        retried = await gateway.post("/auth/refresh", headers=bearer(old))
        assert retried.status_code == 200, retried.text

    async def test_logout_survives_auth0_refusing_the_revocation(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        token = await login(gateway)
        await emulator_http.post(
            "/__emulator/faults", json={"path": "/oauth/revoke", "status": 429, "count": 1}
        )
        assert (await gateway.post("/auth/logout", headers=bearer(token))).status_code == 204
        assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 401
