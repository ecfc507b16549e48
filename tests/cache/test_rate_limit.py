"""The fixed-window limiter: per subject, per window, shared through memcached, fail-open."""

from __future__ import annotations

import asyncio

from app.cache import Cache, MemcachedCache, MemoryCache
from app.cache.rate_limit import FixedWindowLimiter
from tests.servers import MemcachedProcess, free_port

HOUR = 3600.0


def limiter(cache: Cache, clock: list[float], limit: int = 2) -> FixedWindowLimiter:
    return FixedWindowLimiter(
        cache, "t-limit", "signup", limit=limit, window_s=3600, clock=lambda: clock[0]
    )


class TestInMemory:
    async def test_counts_per_subject_and_resets_with_the_window(self) -> None:
        clock = [10 * HOUR + 600]
        limit = limiter(MemoryCache(), clock)
        assert [(await limit.hit("1.2.3.4")).allowed for _ in range(3)] == [True, True, False]
        assert (await limit.hit("5.6.7.8")).allowed
        refused = await limit.hit("1.2.3.4")
        assert refused.retry_after_s == 3000
        clock[0] = 11 * HOUR
        assert (await limit.hit("1.2.3.4")).allowed

    async def test_zero_means_no_limit(self) -> None:
        limit = limiter(MemoryCache(), [0.0], limit=0)
        assert all([(await limit.hit("ip")).allowed for _ in range(50)])


class TestMemcached:
    async def test_concurrent_hits_from_two_workers_are_counted_exactly(
        self, memcached_server: MemcachedProcess
    ) -> None:
        clock = [20 * HOUR]
        first = MemcachedCache.from_url(memcached_server.url)
        second = MemcachedCache.from_url(memcached_server.url)
        try:
            a, b = limiter(first, clock, limit=10), limiter(second, clock, limit=10)
            verdicts = await asyncio.gather(*(limiter_.hit("9.9.9.9") for limiter_ in [a, b] * 10))
        finally:
            await first.close()
            await second.close()
        assert sorted(v.count for v in verdicts) == list(range(1, 21))
        assert sum(v.allowed for v in verdicts) == 10

    async def test_an_unreachable_memcached_lets_requests_through(self) -> None:
        cache = MemcachedCache("127.0.0.1", free_port(), timeout_s=0.1)
        try:
            limit = limiter(cache, [0.0], limit=1)
            assert all([(await limit.hit("ip")).allowed for _ in range(3)])
        finally:
            await cache.close()
