"""The database is the record: memcached may restart, flush, evict, hang or be fed anything, and
no session is lost and no logout undone. Two gateway instances share one memcached namespace and
one database (SQLite, and PostgreSQL where the test takes ``database_url``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from app.auth.cipher import generate_key
from app.cache import MemcachedCache, cache_key, secret_digest
from tests.conftest import RunningEmulator
from tests.db.fixtures import _in_thread, _migrated_database
from tests.db.postgres import PostgresProcess
from tests.e2e.conftest import ADMIN, VIEWER, bearer, emulator_stats, login
from tests.observability.scrape import sample, scrape
from tests.servers import MemcachedProcess

LOCAL_TTL_S = 1.0
# how long a worker may take to learn of a revocation: its in-process tier and its sync
SETTLE_S = LOCAL_TTL_S + 0.5
#: GATEWAY_SESSION__REVOCATION_SYNC_S's default: how soon a worker reads a revocation made
#: elsewhere (what bounds a logout when memcached misses its delete)
SYNC_S = 2.0

Pair = tuple[httpx.AsyncClient, httpx.AsyncClient]


async def two_instances(
    factory: Callable[..., Any], memcached: MemcachedProcess, database_url: str | None = None
) -> Pair:
    """Two gateways ("workers") on ``memcached``, one namespace, one database (the test's
    SQLite file unless ``database_url`` names another)."""
    cache: dict[str, Any] = {"local_ttl_s": LOCAL_TTL_S, "timeout_s": 0.2}
    database = {} if database_url is None else {"database": {"url": database_url}}
    first, settings = await factory(cache_url=memcached.url, cache=cache, **database)
    cache["namespace"] = settings.cache.namespace
    second, _ = await factory(cache_url=memcached.url, cache=cache, **database)
    return first, second


async def status(client: httpx.AsyncClient, token: str) -> int:
    """``GET /auth/me``'s status."""
    return (await client.get("/auth/me", headers=bearer(token))).status_code


async def refreshes(client: httpx.AsyncClient, token: str) -> str:
    """Refresh ``token`` and return the new access token (asserting success)."""
    response = await client.post("/auth/refresh", headers=bearer(token))
    assert response.status_code == 200, response.text
    new: str = response.json()["access_token"]
    return new


async def logged_out_and_live(pair: Pair, emulator: RunningEmulator) -> tuple[str, str]:
    """A token logged out through the first instance after both served it, and a live one."""
    first = pair[0]
    gone = await login(first, VIEWER)
    emulator.tenant.clock_offset_s += 1
    live = await login(first, ADMIN)
    for client in pair:
        assert await status(client, gone) == 200
        assert await status(client, live) == 200
    assert (await first.post("/auth/logout", headers=bearer(gone))).status_code == 204
    return gone, live


async def assert_logout_holds_and_session_lives(pair: Pair, gone: str, live: str) -> None:
    """After the settle time: the logged-out token is refused everywhere, ``live`` refreshes."""
    await asyncio.sleep(SETTLE_S)
    for client in pair:
        for _ in range(3):
            assert await status(client, gone) == 401
        assert (await client.post("/auth/refresh", headers=bearer(gone))).status_code == 401
    new = await refreshes(pair[1], live)
    assert await status(pair[0], new) == 200


class TestMemcachedLosesEverything:
    """On SQLite (revocations polled) and PostgreSQL (pushed with NOTIFY as well)."""

    async def test_restart(
        self,
        gateway_factory: Callable[..., Any],
        memcached: MemcachedProcess,
        emulator: RunningEmulator,
        database_url: str,
    ) -> None:
        pair = await two_instances(gateway_factory, memcached, database_url)
        gone, live = await logged_out_and_live(pair, emulator)
        memcached.stop()
        memcached.start()
        await assert_logout_holds_and_session_lives(pair, gone, live)

    async def test_flush_all(
        self,
        gateway_factory: Callable[..., Any],
        memcached: MemcachedProcess,
        emulator: RunningEmulator,
        database_url: str,
    ) -> None:
        pair = await two_instances(gateway_factory, memcached, database_url)
        gone, live = await logged_out_and_live(pair, emulator)
        assert memcached.command(b"flush_all") == b"OK"
        await assert_logout_holds_and_session_lives(pair, gone, live)

    async def test_eviction_under_memory_pressure(
        self,
        gateway_factory: Callable[..., Any],
        emulator: RunningEmulator,
        database_url: str,
    ) -> None:
        small = MemcachedProcess(memory_mb=2).start()
        try:
            pair = await two_instances(gateway_factory, small, database_url)
            gone, live = await logged_out_and_live(pair, emulator)
            # far more than 2 MB in items of the sizes the gateway writes: all of them go
            small.fill(2_000, range(100, 1_200, 50))
            assert not any(":principal:" in key for key in small.keys())  # noqa: SIM118 - memcached, not a dict
            await assert_logout_holds_and_session_lives(pair, gone, live)
        finally:
            small.stop()

    async def test_hung_during_the_logout(
        self,
        gateway_factory: Callable[..., Any],
        memcached: MemcachedProcess,
        emulator: RunningEmulator,
        database_url: str,
    ) -> None:
        pair = await two_instances(gateway_factory, memcached, database_url)
        first = pair[0]
        gone = await login(first, VIEWER)
        emulator.tenant.clock_offset_s += 1
        live = await login(first, ADMIN)
        for client in pair:
            assert await status(client, gone) == 200
        memcached.pause()  # answers nothing, keeps the cached principal of `gone`
        try:
            started = time.monotonic()
            response = await first.post("/auth/logout", headers=bearer(gone))
            assert response.status_code == 204, response.text
            assert time.monotonic() - started < 2
        finally:
            memcached.resume()
        # the principal is still in memcached: the revocation list must refuse it
        keys = memcached.keys()
        assert any(":principal:" in key for key in keys)
        await assert_logout_holds_and_session_lives(pair, gone, live)

    async def test_a_stale_entry_put_back_after_the_logout_is_refused(
        self,
        gateway_factory: Callable[..., Any],
        memcached: MemcachedProcess,
        emulator: RunningEmulator,
        database_url: str,
    ) -> None:
        """memcached handing out the principal the logout deleted (a lost delete, a node that
        comes back with old data): a genuine, sealed entry, refused by the revocation list."""
        pair = await two_instances(gateway_factory, memcached, database_url)
        first, second = pair
        gone = await login(first, VIEWER)
        emulator.tenant.clock_offset_s += 1
        live = await login(first, ADMIN)
        assert await status(second, gone) == 200
        stored = memcached.keys()  # the server's keys (a stats dump), not a dict
        [key] = [k for k in stored if k.endswith(f":principal:{secret_digest(gone)}")]
        cache = MemcachedCache.from_url(memcached.url)
        try:
            stale = await cache.get(key)
            assert stale is not None
            assert (await first.post("/auth/logout", headers=bearer(gone))).status_code == 204
            assert await cache.get(key) is None, "the logout deletes the entry"
            assert await cache.set(key, stale, 600)
            # the second instance learns of the logout from the database's revocations
            await asyncio.sleep(SYNC_S)
            await assert_logout_holds_and_session_lives(pair, gone, live)
            assert await cache.get(key) == stale, "refused as it is, not merely gone"
        finally:
            await cache.close()


class TestLineage:
    async def test_a_logout_with_an_old_token_ends_its_successors(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        first = await login(gateway, VIEWER)
        emulator.tenant.clock_offset_s += 1
        second = await refreshes(gateway, first)
        emulator.tenant.clock_offset_s += 1
        third = await refreshes(gateway, second)
        assert await status(gateway, third) == 200

        assert (await gateway.post("/auth/logout", headers=bearer(first))).status_code == 204

        for token in (first, second, third):
            assert await status(gateway, token) == 401
            assert (await gateway.post("/auth/refresh", headers=bearer(token))).status_code == 401
        assert not any(emulator.tenant.is_live(t) for t in emulator.tenant.refresh_tokens.values())

    async def test_a_refresh_after_a_logout_is_refused_within_the_grace(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        old = await login(gateway, VIEWER)
        emulator.tenant.clock_offset_s += 1
        new = await refreshes(gateway, old)
        # a second refresh of `old` within the grace gets the same answer...
        assert await refreshes(gateway, old) == new
        assert (await gateway.post("/auth/logout", headers=bearer(new))).status_code == 204
        # ...but not once the session has ended
        again = await gateway.post("/auth/refresh", headers=bearer(old))
        assert again.status_code == 401
        assert again.json()["error"] == "invalid_grant"

    async def test_a_refresh_racing_a_logout_ends_with_what_it_minted_revoked(
        self,
        gateway_factory: Callable[..., Any],
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        first, settings = await gateway_factory()
        second, _ = await gateway_factory(cache={"namespace": settings.cache.namespace})
        token = await login(first, VIEWER)
        emulator.tenant.clock_offset_s += 1
        # the exchange takes 800 ms: the logout lands while it is in flight
        await emulator_http.post(
            "/__emulator/faults",
            json={"path": "/oauth/token", "status": None, "count": 1, "delay_ms": 800},
        )
        refresh = asyncio.create_task(first.post("/auth/refresh", headers=bearer(token)))
        await asyncio.sleep(0.3)
        assert (await second.post("/auth/logout", headers=bearer(token))).status_code == 204
        answer = await refresh
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "invalid_grant"
        assert not any(emulator.tenant.is_live(t) for t in emulator.tenant.refresh_tokens.values())
        assert (await first.post("/auth/refresh", headers=bearer(token))).status_code == 401

    async def test_a_login_right_after_a_logout_gets_a_working_token(
        self, gateway: httpx.AsyncClient
    ) -> None:
        # within one second Auth0 (no jti) may issue the very token the logout denied
        for _ in range(3):
            token = await login(gateway, VIEWER)
            assert (await gateway.post("/auth/logout", headers=bearer(token))).status_code == 204
            again = await login(gateway, VIEWER)
            assert await status(gateway, again) == 200
            assert (await gateway.post("/auth/logout", headers=bearer(again))).status_code == 204


class TestForgedEntries:
    async def test_an_entry_written_by_someone_else_grants_nothing(
        self,
        gateway_factory: Callable[..., Any],
        memcached: MemcachedProcess,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        client, settings = await gateway_factory(cache_url=memcached.url)
        # a JWT-shaped string nobody signed, and an all-permissions principal for it
        forged_token = jwt.encode({"sub": "auth0|mallory"}, "k" * 32, algorithm="HS256")
        principal = {
            "sub": "auth0|mallory",
            "permissions": ["read:users", "delete:users", "read:venues"],
            "scopes": [],
            "expires_at": int(time.time()) + 3600,
        }
        key = cache_key(settings.cache_namespace, "principal", forged_token)
        memcached.set(key, json.dumps(principal).encode())
        assert await status(client, forged_token) == 401
        assert sample(await scrape(client), "gateway_cache_entries_rejected_total") >= 1

    async def test_an_entry_copied_to_another_key_grants_nothing(
        self,
        gateway_factory: Callable[..., Any],
        memcached: MemcachedProcess,
    ) -> None:
        client, settings = await gateway_factory(cache_url=memcached.url, cache={"local_ttl_s": 0})
        admin = await login(client, ADMIN)
        assert await status(client, admin) == 200
        namespace = settings.cache_namespace
        sealed = memcached.get(cache_key(namespace, "principal", admin))
        assert sealed is not None
        forged_token = jwt.encode({"sub": "auth0|mallory"}, "k" * 32, algorithm="HS256")
        memcached.set(cache_key(namespace, "principal", forged_token), sealed)
        assert await status(client, forged_token) == 401
        assert await status(client, admin) == 200

    async def test_environments_sharing_memcached_cannot_mint_for_each_other(
        self,
        gateway_factory: Callable[..., Any],
        memcached: MemcachedProcess,
    ) -> None:
        dev, dev_settings = await gateway_factory(cache_url=memcached.url)
        admin = await login(dev, ADMIN)
        assert await status(dev, admin) == 200
        # another deployment (its own keys) that uses the same namespace by mistake
        other, _ = await gateway_factory(
            cache_url=memcached.url,
            cache={"namespace": dev_settings.cache_namespace},
            session={"keys": [generate_key()]},
        )
        before = sample(await scrape(other), "gateway_cache_entries_rejected_total")
        # it validates the token itself rather than trusting dev's entry
        assert await status(other, admin) == 200
        assert sample(await scrape(other), "gateway_cache_entries_rejected_total") > before


class TestDatabaseDown:
    @pytest.fixture
    def own_postgres(self) -> Iterator[PostgresProcess]:
        """A PostgreSQL of this test's own, which it stops."""
        server = PostgresProcess().start()
        yield server
        server.stop()

    async def test_logins_refreshes_logouts_503_and_cached_tokens_keep_working(
        self,
        gateway_factory: Callable[..., Any],
        own_postgres: PostgresProcess,
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        url = _in_thread(_migrated_database(own_postgres.url))
        client, _ = await gateway_factory(database={"url": url, "timeout_s": 2.0})
        token = await login(client, VIEWER)
        assert await status(client, token) == 200
        own_postgres.stop()

        assert await status(client, token) == 200
        for response in (
            await client.post("/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}),
            await client.post("/auth/refresh", headers=bearer(token)),
            await client.post("/auth/logout", headers=bearer(token)),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "session_store_unavailable"
            assert int(response.headers["retry-after"]) > 0
        assert await status(client, token) == 200
        # the login that could not be recorded left no live refresh token behind at Auth0
        live = [t for t in emulator.tenant.refresh_tokens.values() if emulator.tenant.is_live(t)]
        assert len(live) == 1
        assert (await emulator_stats(emulator_http))["requests"].get("POST /oauth/revoke") == 1
