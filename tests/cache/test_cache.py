"""The cache: keys, both stores against the same contract, memcached failures, the local tier."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Literal

import pytest

from app.auth.principal import Principal
from app.cache import (
    MAX_KEY_BYTES,
    LocalTier,
    MemcachedCache,
    MemcachedPool,
    MemoryCache,
    build_cache,
    cache_key,
)
from settings.model import CacheSettings
from tests.servers import MemcachedProcess, TwemproxyProcess

DAY_S = 86_400
LONG_JWT = "eyJhbGciOiJSUzI1NiJ9." + "x" * 2_000 + ".signature"


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own on the shared memcached."""
    return f"test-{uuid.uuid4().hex[:12]}"


Store = MemoryCache | MemcachedCache | MemcachedPool


@pytest.fixture(params=["memory", "memcached", "pool", "twemproxy"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Each store, so that all keep the same contract: one memcached, a pool of three, and one
    twemproxy in front of three (which must not be sent a command it cannot proxy)."""
    if request.param == "memory":
        yield MemoryCache()
        return
    store: MemcachedCache | MemcachedPool
    if request.param == "pool":
        servers: list[MemcachedProcess] = request.getfixturevalue("memcached_trio")
        nodes = [("127.0.0.1", server.port) for server in servers]
        store = MemcachedPool.from_nodes(nodes, pool_size=4, timeout_s=1.0)
    else:
        fixture = "memcached_server" if request.param == "memcached" else "twemproxy_server"
        server: MemcachedProcess | TwemproxyProcess = request.getfixturevalue(fixture)
        store = MemcachedCache.from_url(server.url, pool_size=4, timeout_s=1.0)
    yield store
    await store.close()


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FaultyProxy:
    """A TCP proxy in front of a real memcached whose replies can be delayed, dropped or cut."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode: Literal["forward", "delay", "silent", "hangup"] = "forward"
        self.delay_s = 0.0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FaultyProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, replies=False),
                self._pump(up_reader, writer, replies=True),
            )
        finally:
            for stream in (writer, up_writer):
                stream.close()
                with contextlib.suppress(OSError):
                    await stream.wait_closed()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, replies: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65_536):
                if replies and self.mode == "silent":
                    continue
                if replies and self.mode == "hangup":
                    break
                if replies and self.mode == "delay":
                    await asyncio.sleep(self.delay_s)
                sink.write(data)
                await sink.drain()
        sink.close()


def principal(expires_at: float, sub: str = "auth0|alice") -> Principal:
    """A principal whose token expires at ``expires_at``."""
    return Principal(sub=sub, permissions=("read:venues",), expires_at=int(expires_at))


class TestCacheKey:
    def test_hashes_the_secret_and_fits_memcached(self) -> None:
        key = cache_key("vg-dev", "principal", LONG_JWT)

        assert key.startswith("vg-dev:principal:")
        assert len(key.encode()) <= MAX_KEY_BYTES
        assert LONG_JWT not in key
        assert "signature" not in key
        assert key == cache_key("vg-dev", "principal", LONG_JWT)

    def test_namespace_and_kind_separate_keys(self) -> None:
        keys = {
            cache_key("vg-dev", "principal", "t"),
            cache_key("vg-int", "principal", "t"),
            cache_key("vg-dev", "session", "t"),
        }
        assert len(keys) == 3

    @pytest.mark.parametrize(
        ("namespace", "kind"),
        [("", "principal"), ("vg dev", "principal"), ("vg-dev", "ki\nnd"), ("n" * 200, "x")],
    )
    def test_refuses_prefixes_memcached_would_refuse(self, namespace: str, kind: str) -> None:
        with pytest.raises(ValueError, match="cache namespace"):
            cache_key(namespace, kind, "token")


class TestContract:
    async def test_set_get_delete(self, cache: Store, ns: str) -> None:
        key = cache_key(ns, "principal", "token-1")

        assert await cache.get(key) is None
        assert await cache.set(key, b"value", 60) is True
        assert await cache.get(key) == b"value"
        assert await cache.set(key, b"newer", 60) is True
        assert await cache.get(key) == b"newer"
        await cache.delete(key)
        assert await cache.get(key) is None
        await cache.delete(key)

    async def test_add_only_when_absent(self, cache: Store, ns: str) -> None:
        key = cache_key(ns, "lock", "token-1")

        assert await cache.add(key, b"first", 60) is True
        assert await cache.add(key, b"second", 60) is False
        assert await cache.get(key) == b"first"
        await cache.delete(key)
        assert await cache.add(key, b"third", 60) is True

    async def test_one_winner_among_concurrent_adds(self, cache: Store, ns: str) -> None:
        key = cache_key(ns, "lock", "token-1")

        won = await asyncio.gather(*(cache.add(key, str(i).encode(), 60) for i in range(10)))

        assert won.count(True) == 1

    async def test_no_ttl_stores_nothing_and_drops_the_old_value(
        self, cache: Store, ns: str
    ) -> None:
        key = cache_key(ns, "principal", "token-1")
        await cache.set(key, b"old", 60)

        assert await cache.set(key, b"expired", 0) is False
        assert await cache.get(key) is None
        assert await cache.set(key, b"expired", -5) is False
        assert await cache.add(key, b"expired", 0) is False
        assert await cache.get(key) is None

    async def test_ttl_beyond_thirty_days_is_kept(self, cache: Store, ns: str) -> None:
        # memcached would read a raw 40-day TTL as a Unix time in 1970: already expired.
        key = cache_key(ns, "session", "token-1")

        assert await cache.set(key, b"long", 40 * DAY_S) is True
        assert await cache.get(key) == b"long"
        assert await cache.add(cache_key(ns, "lock", "t"), b"x", 365 * DAY_S) is True
        assert await cache.get(cache_key(ns, "lock", "t")) == b"x"

    async def test_counts_hits_and_misses(self, cache: Store, ns: str) -> None:
        key = cache_key(ns, "principal", "token-1")
        await cache.get(key)
        await cache.set(key, b"v", 60)
        await cache.get(key)
        await cache.get(key)

        assert (cache.hits, cache.misses, cache.errors) == (2, 1, 0)

    async def test_ping(self, cache: Store) -> None:
        assert await cache.ping() is True


async def test_items_expire(memcached_server: MemcachedProcess, ns: str) -> None:
    memory = MemoryCache()
    memcached = MemcachedCache.from_url(memcached_server.url, timeout_s=1.0)
    short, sub_second, long = (cache_key(ns, "principal", t) for t in ("short", "sub", "long"))
    try:
        for store in (memory, memcached):
            assert await store.set(short, b"s", 1)
            # int(0.3) would be 0, which memcached reads as "never expires".
            assert await store.set(sub_second, b"ss", 0.3)
            assert await store.set(long, b"l", 30)

        await asyncio.sleep(1.1)

        for store in (memory, memcached):
            assert await store.get(short) is None
            assert await store.get(sub_second) is None
            assert await store.get(long) == b"l"
    finally:
        await memcached.close()


class TestMemoryCache:
    async def test_expiry_follows_the_clock(self) -> None:
        clock = Clock(1_000.0)
        cache = MemoryCache(clock=clock)
        await cache.set("k", b"v", 10)
        await cache.add("lock", b"held", 5)

        clock.now += 5
        assert await cache.add("lock", b"again", 5) is True
        clock.now += 4.9
        assert await cache.get("k") == b"v"
        clock.now += 0.1
        assert await cache.get("k") is None

    async def test_bounded_least_recently_used_first(self) -> None:
        cache = MemoryCache(max_entries=3)
        for key in ("a", "b", "c"):
            await cache.set(key, key.encode(), 60)
        await cache.get("a")

        await cache.set("d", b"d", 60)

        assert len(cache) == 3
        assert await cache.get("b") is None
        assert [await cache.get(k) for k in ("a", "c", "d")] == [b"a", b"c", b"d"]


class TestMemcachedKeys:
    async def test_keys_are_hashes_within_250_bytes(
        self, memcached_server: MemcachedProcess, ns: str
    ) -> None:
        cache = MemcachedCache.from_url(memcached_server.url, timeout_s=1.0)
        try:
            for kind in ("principal", "session", "grace", "revoked"):
                assert await cache.set(cache_key(ns, kind, LONG_JWT), b"v", 60)
        finally:
            await cache.close()

        stored = memcached_server.keys()
        ours = [key for key in stored if key.startswith(f"{ns}:")]
        assert len(ours) == 4
        for key in ours:
            assert len(key.encode()) <= MAX_KEY_BYTES
            assert "eyJ" not in key
            assert "xxxxxxxx" not in key


class TestMemcachedFailures:
    async def test_killed_memcached_is_a_miss_then_recovers(
        self, memcached: MemcachedProcess, ns: str
    ) -> None:
        timeout_s = 0.25
        cache = MemcachedCache.from_url(memcached.url, pool_size=4, timeout_s=timeout_s)
        key = cache_key(ns, "principal", "token-1")
        try:
            assert await cache.set(key, b"before", 60)
            assert await asyncio.gather(*(cache.get(key) for _ in range(8))) == [b"before"] * 8

            memcached.stop()

            results = []
            for operation in (
                cache.get(key),
                cache.set(key, b"during", 60),
                cache.add(key, b"during", 60),
                cache.delete(key),
                cache.ping(),
            ):
                started = time.monotonic()
                results.append(await operation)
                assert time.monotonic() - started < timeout_s + 0.2
            assert results == [None, False, True, None, False]
            assert await asyncio.gather(*(cache.get(key) for _ in range(8))) == [None] * 8
            assert cache.errors >= 13

            memcached.start()

            assert await cache.set(key, b"after", 60) is True
            assert await asyncio.gather(*(cache.get(key) for _ in range(8))) == [b"after"] * 8
            assert await cache.ping() is True
        finally:
            await cache.close()

    async def test_failures_are_logged_without_storms_or_keys(
        self, memcached: MemcachedProcess, ns: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        cache = MemcachedCache.from_url(memcached.url, pool_size=2, timeout_s=0.25)
        key = cache_key(ns, "principal", "token-1")
        memcached.stop()
        caplog.set_level(logging.WARNING, logger="app.cache")
        try:
            for _ in range(50):
                assert await cache.get(key) is None
        finally:
            await cache.close()

        assert cache.errors == 50
        assert len(caplog.records) == 1
        assert "ConnectionRefusedError" in caplog.text
        assert key.rsplit(":", 1)[1] not in caplog.text

    async def test_unanswered_command_times_out(
        self, memcached_server: MemcachedProcess, ns: str
    ) -> None:
        key = cache_key(ns, "principal", "token-1")
        async with FaultyProxy(memcached_server.port) as proxy:
            # each operation's own timeout; the breaker (tests/cache/test_breaker.py) stays out
            cache = MemcachedCache(
                "127.0.0.1", proxy.port, pool_size=2, timeout_s=0.1, breaker_threshold=10
            )
            try:
                assert await cache.set(key, b"v", 60)
                proxy.mode = "silent"
                for operation, expected in (
                    (cache.get(key), None),
                    (cache.set(key, b"w", 60), False),
                    (cache.add(key, b"w", 60), True),
                    (cache.ping(), False),
                ):
                    started = time.monotonic()
                    assert await operation == expected
                    assert time.monotonic() - started < 0.3

                proxy.mode = "forward"
                assert await cache.get(key) == b"w"
            finally:
                await cache.close()

    async def test_server_hanging_up_mid_command_does_not_freeze_the_loop(
        self, memcached_server: MemcachedProcess, ns: str
    ) -> None:
        # aiomcache 0.8.2 spins forever here on storage commands (aio-libs/aiomcache#502).
        key = cache_key(ns, "principal", "token-1")
        async with FaultyProxy(memcached_server.port) as proxy:
            cache = MemcachedCache("127.0.0.1", proxy.port, pool_size=1, timeout_s=0.5)
            try:
                proxy.mode = "hangup"
                for operation in (cache.set(key, b"v", 60), cache.add(key, b"v", 60)):
                    started = time.monotonic()
                    await operation
                    assert time.monotonic() - started < 0.5
                assert cache.errors == 2

                proxy.mode = "forward"
                assert await cache.set(key, b"w", 60) is True
            finally:
                await cache.close()

    async def test_late_reply_never_answers_the_next_command(
        self, memcached_server: MemcachedProcess, ns: str
    ) -> None:
        key = cache_key(ns, "lock", "token-1")
        async with FaultyProxy(memcached_server.port) as proxy:
            cache = MemcachedCache("127.0.0.1", proxy.port, pool_size=1, timeout_s=0.1)
            try:
                proxy.mode, proxy.delay_s = "delay", 0.3
                assert await cache.add(key, b"first", 60) is True  # timed out: proceed
                assert cache.errors == 1
                await asyncio.sleep(0.4)  # memcached's late STORED has arrived by now
                proxy.mode = "forward"

                assert await cache.add(key, b"second", 60) is False
                assert await cache.get(key) == b"first"
            finally:
                await cache.close()

    async def test_closed_cache_answers_misses(self, memcached_server: MemcachedProcess) -> None:
        cache = MemcachedCache.from_url(memcached_server.url)
        assert await cache.ping()
        await cache.close()
        await cache.close()

        assert await cache.get("k") is None
        assert await cache.set("k", b"v", 60) is False


class TestBuildCache:
    async def test_memory_url(self) -> None:
        cache = build_cache(CacheSettings(url="memory://"))
        assert isinstance(cache, MemoryCache)

    async def test_memcached_url(self, memcached_server: MemcachedProcess) -> None:
        settings = CacheSettings(url=memcached_server.url, pool_size=3, timeout_s=0.5)
        cache = build_cache(settings)
        try:
            assert isinstance(cache, MemcachedCache)
            assert (cache.host, cache.port) == ("127.0.0.1", memcached_server.port)
            assert await cache.ping() is True
        finally:
            await cache.close()


class TestLocalTier:
    def test_get_is_synchronous(self) -> None:
        assert not inspect.iscoroutinefunction(LocalTier.get)
        assert not inspect.iscoroutinefunction(LocalTier.put)
        tier = LocalTier[Principal](ttl_s=5, max_entries=10)
        alice = principal(time.time() + 60)
        tier.put("k", alice, 60)

        assert tier.get("k") == alice

    def test_entry_lives_for_the_shortest_ttl(self) -> None:
        mono, wall = Clock(100.0), Clock(1_700_000_000.0)
        tier = LocalTier[Principal](ttl_s=5, max_entries=10, monotonic=mono, wall=wall)
        tier.put("local-ttl", principal(wall.now + 3_600), 60)
        tier.put("caller-ttl", principal(wall.now + 3_600), 2)

        mono.now += 2
        wall.now += 2
        assert tier.get("caller-ttl") is None
        assert tier.get("local-ttl") is not None
        mono.now += 3
        wall.now += 3
        assert tier.get("local-ttl") is None

    def test_never_past_the_token_expiry(self) -> None:
        mono, wall = Clock(100.0), Clock(1_700_000_000.0)
        tier = LocalTier[Principal](ttl_s=60, max_entries=10, monotonic=mono, wall=wall)
        tier.put("k", principal(wall.now + 3), 60)
        tier.put("expired", principal(wall.now - 1), 60)
        tier.put("expiring-now", principal(wall.now), 60)

        assert tier.get("expired") is None
        assert tier.get("expiring-now") is None
        mono.now += 2.9
        wall.now += 2.9
        assert tier.get("k") is not None
        mono.now += 0.1
        wall.now += 0.1
        assert tier.get("k") is None

    def test_wall_clock_jump_cannot_serve_an_expired_token(self) -> None:
        mono, wall = Clock(100.0), Clock(1_700_000_000.0)
        tier = LocalTier[Principal](ttl_s=60, max_entries=10, monotonic=mono, wall=wall)
        tier.put("k", principal(wall.now + 30), 60)

        wall.now += 31

        assert tier.get("k") is None

    def test_bounded_least_recently_used_first(self) -> None:
        tier = LocalTier[Principal](ttl_s=60, max_entries=2)
        expires = time.time() + 600
        tier.put("a", principal(expires, "a"), 60)
        tier.put("b", principal(expires, "b"), 60)
        tier.get("a")
        tier.put("c", principal(expires, "c"), 60)

        assert len(tier) == 2
        assert tier.get("b") is None
        assert tier.get("a") is not None
        assert tier.get("c") is not None

    def test_discard(self) -> None:
        tier = LocalTier[Principal](ttl_s=60, max_entries=2)
        tier.put("a", principal(time.time() + 600), 60)
        tier.discard("a")
        tier.discard("never-there")

        assert tier.get("a") is None

    @pytest.mark.parametrize(("ttl_s", "max_entries"), [(0, 10), (5, 0)])
    def test_disabled(self, ttl_s: float, max_entries: int) -> None:
        tier = LocalTier[Principal].from_settings(
            CacheSettings(local_ttl_s=ttl_s, local_max_entries=max_entries)
        )
        tier.put("a", principal(time.time() + 600), 60)

        assert not tier.enabled
        assert tier.get("a") is None
        assert len(tier) == 0
