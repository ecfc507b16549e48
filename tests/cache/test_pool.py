"""A memcached pool: the URL lists the nodes, rendezvous hashing spreads and moves few keys, a
node that fails is ejected and its keys served by the others, and comes back by itself."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.cache import MemcachedCache, MemcachedPool, build_cache, cache_key
from app.observability.logging import RequestContextFilter, request_id_var
from app.observability.metrics import Metrics
from settings.model import CacheSettings, Settings
from tests.observability.scrape import sample
from tests.servers import MemcachedProcess, TwemproxyProcess

KEYS = [cache_key("vg-test", "principal", f"token-{i}") for i in range(10_000)]


def addresses(count: int) -> list[tuple[str, int]]:
    return [(f"10.0.0.{i + 1}", 11211) for i in range(count)]


@pytest.fixture
def trio() -> Iterator[list[MemcachedProcess]]:
    """Three memcached of this test's own, which it may stop and start again."""
    servers = [MemcachedProcess().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class TestUrl:
    def test_lists_the_nodes(self) -> None:
        settings = CacheSettings(url="memcached://h1:11211,h2,[::1]:11300, h3:11212")
        assert settings.nodes == [("h1", 11211), ("h2", 11211), ("::1", 11300), ("h3", 11212)]

    def test_from_the_environment_builds_a_pool(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # This URL used to pass validation and then crash start-up on its port.
        monkeypatch.setenv("GATEWAY_CACHE__URL", "memcached://127.0.0.1:34933,127.0.0.1:48917")
        cache = build_cache(Settings().cache)
        assert isinstance(cache, MemcachedPool)
        assert [node.node for node in cache.nodes] == ["127.0.0.1:34933", "127.0.0.1:48917"]

    def test_one_host_is_one_node(self) -> None:
        cache = build_cache(CacheSettings(url="memcached://127.0.0.1:11211"))
        assert isinstance(cache, MemcachedCache)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("memcached://h1:11211,h2:notaport", "the port must be 1-65535"),
            ("memcached://h1:11211,,h2", "needs a host"),
            ("memcached://h1,h1:11211", "listed twice"),
            ("memcached://h1:0", "expected host:port"),
            ("memcached://h1/db", "takes only hosts"),
            ("memcached://", "needs a host"),
        ],
    )
    def test_a_bad_url_is_a_clear_settings_error(self, url: str, message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            CacheSettings(url=url)


class TestRendezvousHashing:
    def test_spreads_keys_evenly(self) -> None:
        pool = MemcachedPool.from_nodes(addresses(3))
        homes = Counter(pool.ranked(key)[0].node for key in KEYS)
        assert len(homes) == 3
        for count in homes.values():
            assert abs(count / len(KEYS) - 1 / 3) < 0.03, homes

    def test_adding_a_node_moves_about_one_key_in_n(self) -> None:
        before = MemcachedPool.from_nodes(addresses(3))
        after = MemcachedPool.from_nodes(addresses(4))
        new = after.nodes[3].node
        moved = [key for key in KEYS if before.ranked(key)[0].node != after.ranked(key)[0].node]
        assert abs(len(moved) / len(KEYS) - 1 / 4) < 0.03
        # and every key that moved went to the new node: no shuffling among the old ones
        assert {after.ranked(key)[0].node for key in moved} == {new}

    def test_removing_a_node_moves_only_its_keys(self) -> None:
        before = MemcachedPool.from_nodes(addresses(4))
        after = MemcachedPool.from_nodes(addresses(4)[:3])
        gone = before.nodes[3].node
        for key in KEYS[:2000]:
            home = before.ranked(key)[0].node
            if home != gone:
                assert after.ranked(key)[0].node == home
            else:
                assert after.ranked(key)[0].node == before.ranked(key)[1].node

    def test_the_order_of_the_url_does_not_matter(self) -> None:
        forward = MemcachedPool.from_nodes(addresses(3))
        backward = MemcachedPool.from_nodes(addresses(3)[::-1])
        for key in KEYS[:500]:
            assert forward.ranked(key)[0].node == backward.ranked(key)[0].node


class TestPoolOfRealNodes:
    async def test_each_key_is_stored_on_its_home_node(
        self, memcached_trio: list[MemcachedProcess]
    ) -> None:
        by_port = {server.port: server for server in memcached_trio}
        pool = MemcachedPool.from_nodes([("127.0.0.1", port) for port in by_port])
        ns = f"test-{uuid.uuid4().hex[:12]}"
        try:
            keys = [cache_key(ns, "principal", f"token-{i}") for i in range(60)]
            for key in keys:
                assert await pool.set(key, key[-8:].encode(), 60)
            for key in keys:
                home = pool.ranked(key)[0]
                assert by_port[home.port].get(key) == key[-8:].encode()
                others = [s for port, s in by_port.items() if port != home.port]
                assert all(server.get(key) is None for server in others)
            assert {pool.ranked(key)[0].port for key in keys} == set(by_port)
        finally:
            await pool.close()

    async def test_a_stopped_node_is_ejected_and_the_others_serve_its_keys(
        self, trio: list[MemcachedProcess]
    ) -> None:
        metrics = Metrics()
        pool = MemcachedPool.from_nodes(
            [("127.0.0.1", server.port) for server in trio],
            timeout_s=0.5,
            breaker_threshold=3,
            breaker_cooldown_s=0.2,
            observer=metrics,
        )
        try:
            keys = [cache_key("vg-test", "principal", f"token-{i}") for i in range(90)]
            for key in keys:
                assert await pool.set(key, b"v", 60)
            down, down_server = pool.nodes[1], trio[1]
            its_keys = [key for key in keys if pool.ranked(key)[0] is down]
            other_keys = [key for key in keys if pool.ranked(key)[0] is not down]
            assert its_keys
            assert other_keys

            down_server.stop()
            # its keys are misses (never errors to the caller) until the breaker ejects it
            for key in its_keys[: pool.nodes[1].breaker.threshold]:
                assert await pool.get(key) is None
            assert down.breaker.is_open

            # the others keep every entry they had and now also serve the stopped node's keys
            assert [await pool.get(key) for key in other_keys] == [b"v"] * len(other_keys)
            moved = its_keys[0]
            assert pool.node_for(moved) is pool.ranked(moved)[1]
            assert await pool.set(moved, b"moved", 60)
            assert await pool.get(moved) == b"moved"
            assert await pool.ping() is True
            assert (await pool.ping_nodes())[down.node] is False

            text = metrics.render().decode()
            assert sample(text, "gateway_cache_breaker_open", node=down.node) == 1
            operations = "gateway_cache_operations_total"
            assert sample(text, operations, node=down.node, outcome="error") >= 3
            assert sample(text, operations, node=pool.nodes[0].node, outcome="ok") > 0

            # started again (empty), the background probe brings it back with its keys
            down_server.start()
            await wait_until(lambda: not down.breaker.is_open)
            assert pool.node_for(moved) is down
            assert await pool.get(moved) is None  # a cache: the restarted node is empty
            assert await pool.set(moved, b"home", 60)
            assert down_server.get(moved) == b"home"
            text = metrics.render().decode()
            assert sample(text, "gateway_cache_breaker_open", node=down.node) == 0
        finally:
            await pool.close()

    async def test_the_probe_logs_outside_the_request_that_opened_the_breaker(
        self, trio: list[MemcachedProcess], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.handler.addFilter(RequestContextFilter())
        pool = MemcachedPool.from_nodes(
            [("127.0.0.1", trio[0].port)], breaker_threshold=1, breaker_cooldown_s=0.05
        )
        node = pool.nodes[0]
        try:
            trio[0].stop()
            token = request_id_var.set("request-that-met-the-failure")
            try:
                assert await pool.get(cache_key("vg-test", "principal", "t")) is None
            finally:
                request_id_var.reset(token)
            assert node.breaker.is_open

            def probes() -> list[logging.LogRecord]:
                return [r for r in caplog.records if "probe failed" in r.getMessage()]

            await wait_until(lambda: bool(probes()))
            record = probes()[0]
            assert "the breaker stays open" in record.getMessage()
            assert not hasattr(record, "request_id")
        finally:
            await pool.close()

    async def test_every_node_down_is_misses_at_once(self, trio: list[MemcachedProcess]) -> None:
        pool = MemcachedPool.from_nodes(
            [("127.0.0.1", server.port) for server in trio],
            timeout_s=2.0,
            breaker_threshold=1,
            breaker_cooldown_s=30,
        )
        try:
            for server in trio:
                server.stop()
            keys = [cache_key("vg-test", "principal", f"token-{i}") for i in range(30)]
            for key in keys:
                assert await pool.get(key) is None
            await wait_until(lambda: all(node.breaker.is_open for node in pool.nodes))
            started = time.monotonic()
            assert await pool.get(keys[0]) is None
            assert await pool.set(keys[0], b"v", 60) is False
            # no I/O at all: far below even one timeout, however loaded the machine
            assert time.monotonic() - started < 0.5
            assert await pool.ping() is False
        finally:
            await pool.close()


class TestThroughTwemproxy:
    async def test_a_lost_backend_costs_misses_then_twemproxy_ejects_it(
        self, trio: list[MemcachedProcess], tmp_path: Path
    ) -> None:
        proxy = TwemproxyProcess([server.port for server in trio], str(tmp_path)).start()
        cache = MemcachedCache.from_url(proxy.url, timeout_s=1.0)
        try:
            keys = [cache_key("vg-test", "principal", f"token-{i}") for i in range(60)]
            for key in keys:
                assert await cache.set(key, b"v", 60)
            on_each = [sum(server.get(key) is not None for key in keys) for server in trio]
            assert all(count > 0 for count in on_each), on_each

            trio[1].stop()
            # twemproxy answers the lost backend's keys with an error (a miss here) until it
            # ejects it, then hashes them to the others; the other keys are never touched
            values = [await cache.get(key) for key in keys]
            assert values.count(b"v") >= len(keys) - on_each[1]
            assert await cache.ping() is True

            async def stored_everywhere() -> bool:
                return all([await cache.set(key, b"again", 60) for key in keys])

            deadline = time.monotonic() + 10
            while not await stored_everywhere():
                assert time.monotonic() < deadline, "twemproxy did not eject the lost backend"
                await asyncio.sleep(0.2)
            assert [await cache.get(key) for key in keys] == [b"again"] * len(keys)
        finally:
            await cache.close()
            proxy.stop()
