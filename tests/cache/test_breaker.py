"""memcached's circuit breaker: the state machine on a fake clock, then a real memcached frozen
with SIGSTOP (accepting connections, answering nothing)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from app.cache import Breaker, BreakerState, MemcachedCache, build_cache, cache_key
from settings.model import CacheSettings
from tests.servers import MemcachedProcess


class FakeTime:
    """A clock and a ``sleep`` that move only when the test advances them."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        """Let tasks already started reach their sleep, move the clock, wake whoever's sleep
        has ended, and let them run."""
        for _ in range(5):
            await asyncio.sleep(0)
        self.now += seconds
        for entry in list(self._sleepers):
            deadline, future = entry
            if deadline <= self.now:
                self._sleepers.remove(entry)
                future.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)


class Probe:
    """A probe the test answers: each call waits for ``answer()``."""

    def __init__(self) -> None:
        self.calls = 0
        self._answers: asyncio.Queue[bool] = asyncio.Queue()

    async def __call__(self) -> bool:
        self.calls += 1
        return await self._answers.get()

    async def answer(self, ok: bool) -> None:
        self._answers.put_nowait(ok)
        for _ in range(5):
            await asyncio.sleep(0)


class Observer:
    """Records what the breaker reports."""

    def __init__(self) -> None:
        self.states: list[tuple[str, bool]] = []
        self.short_circuits: list[str] = []

    def observe_cache_breaker(self, node: str, is_open: bool) -> None:
        self.states.append((node, is_open))

    def count_cache_short_circuit(self, node: str) -> None:
        self.short_circuits.append(node)


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def probe() -> Probe:
    return Probe()


def state(subject: Breaker) -> BreakerState:
    """The breaker's state, read afresh (not narrowed by an earlier assertion)."""
    return subject.state


def breaker(
    clock: FakeTime, probe: Probe, observer: Observer | None = None, *, threshold: int = 3
) -> Breaker:
    return Breaker(
        "mc:11211",
        probe,
        threshold=threshold,
        cooldown_s=5.0,
        observer=observer,
        clock=clock,
        sleep=clock.sleep,
    )


class TestStateMachine:
    async def test_opens_after_the_threshold_of_consecutive_failures(
        self, clock: FakeTime, probe: Probe
    ) -> None:
        subject = breaker(clock, probe)
        subject.failed()
        subject.failed()
        subject.succeeded()  # an answer starts the count again
        subject.failed()
        subject.failed()
        assert state(subject) is BreakerState.CLOSED
        assert subject.allow()

        subject.failed()

        assert state(subject) is BreakerState.OPEN
        assert not subject.allow()
        assert subject.short_circuits == 1
        await subject.stop()

    async def test_one_probe_after_the_cooldown_and_success_closes(
        self, clock: FakeTime, probe: Probe
    ) -> None:
        subject = breaker(clock, probe, threshold=1)
        subject.failed()
        await clock.advance(4.9)
        assert probe.calls == 0
        assert subject.next_probe_in_s == pytest.approx(0.1)

        await clock.advance(0.1)
        assert probe.calls == 1
        assert state(subject) is BreakerState.HALF_OPEN
        assert not subject.allow(), "operations still fail at once while the probe runs"
        await clock.advance(30)
        assert probe.calls == 1, "one probe at a time"

        await probe.answer(True)
        assert state(subject) is BreakerState.CLOSED
        assert subject.allow()
        await subject.stop()

    async def test_a_failed_probe_restarts_the_cooldown(
        self, clock: FakeTime, probe: Probe
    ) -> None:
        subject = breaker(clock, probe, threshold=1)
        subject.failed()
        await clock.advance(5)
        await clock.advance(1)  # the probe takes a second to fail
        await probe.answer(False)
        assert state(subject) is BreakerState.OPEN
        assert subject.next_probe_in_s == pytest.approx(5)
        assert subject.open_for_s == pytest.approx(6)

        await clock.advance(4.9)
        assert probe.calls == 1
        await clock.advance(0.1)
        assert probe.calls == 2
        await probe.answer(True)
        assert state(subject) is BreakerState.CLOSED
        assert subject.open_for_s == 0
        await subject.stop()

    async def test_outcomes_of_operations_in_flight_do_not_decide(
        self, clock: FakeTime, probe: Probe
    ) -> None:
        subject = breaker(clock, probe, threshold=1)
        subject.failed()
        subject.succeeded()  # started before the breaker opened, answered late
        assert state(subject) is BreakerState.OPEN
        subject.failed()
        await clock.advance(5)
        assert probe.calls == 1, "a late failure starts no second probe"
        await probe.answer(True)
        await subject.stop()

    async def test_reports_state_and_short_circuits(self, clock: FakeTime, probe: Probe) -> None:
        observer = Observer()
        subject = breaker(clock, probe, observer, threshold=2)
        assert observer.states == [("mc:11211", False)], "the series exists from the start"
        subject.failed()
        subject.failed()
        for _ in range(3):
            subject.allow()
        await clock.advance(5)
        await probe.answer(True)

        assert observer.states == [("mc:11211", False), ("mc:11211", True), ("mc:11211", False)]
        assert observer.short_circuits == ["mc:11211"] * 3
        await subject.stop()

    async def test_a_probe_that_raises_is_a_failed_probe(self, clock: FakeTime) -> None:
        async def broken() -> bool:
            raise RuntimeError("probe bug")

        subject = Breaker(
            "mc:11211", broken, threshold=1, cooldown_s=5, clock=clock, sleep=clock.sleep
        )
        subject.failed()
        await clock.advance(5)
        assert state(subject) is BreakerState.OPEN
        assert subject.next_probe_in_s == pytest.approx(5)
        await subject.stop()

    async def test_stop_ends_the_probing(self, clock: FakeTime, probe: Probe) -> None:
        subject = breaker(clock, probe, threshold=1)
        subject.failed()
        await subject.stop()
        await clock.advance(60)
        assert probe.calls == 0
        subject.failed()  # a stopped breaker starts nothing


class TestBuildCache:
    def test_settings_reach_the_breaker(self) -> None:
        cache = build_cache(
            CacheSettings(
                url="memcached://127.0.0.1:1", breaker_threshold=7, breaker_cooldown_s=2.5
            )
        )
        assert isinstance(cache, MemcachedCache)
        assert (cache.breaker.node, cache.breaker.threshold) == ("127.0.0.1:1", 7)
        assert cache.breaker.cooldown_s == 2.5

    def test_defaults(self) -> None:
        settings = CacheSettings()
        assert (settings.breaker_threshold, settings.breaker_cooldown_s) == (3, 5.0)


async def wait_until_closed(cache: MemcachedCache, timeout_s: float) -> float:
    started = time.monotonic()
    while cache.breaker.is_open:
        assert time.monotonic() - started < timeout_s, "the breaker did not close"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


class TestFrozenMemcached:
    async def test_open_breaker_answers_a_burst_at_once_and_closes_after_resume(
        self, memcached: MemcachedProcess
    ) -> None:
        timeout_s, cooldown_s = 0.5, 0.5
        cache = MemcachedCache.from_url(
            memcached.url, pool_size=4, timeout_s=timeout_s, breaker_cooldown_s=cooldown_s
        )
        key = cache_key(f"t-{uuid.uuid4().hex[:8]}", "principal", "token-1")
        try:
            assert await cache.set(key, b"kept", 60)
            memcached.pause()
            try:
                for _ in range(3):  # the threshold: each of these waits its timeout
                    assert await cache.get(key) is None
                assert cache.breaker.is_open

                started = time.monotonic()
                answers: list[tuple[bytes | None, bool, bool, int | None]] = []
                for _ in range(4):
                    answers.append(
                        (
                            await cache.get(key),
                            await cache.set(key, b"new", 60),
                            await cache.add(key, b"lock", 60),
                            await cache.incr(key),
                        )
                    )
                    await cache.delete(key)
                burst_s = time.monotonic() - started
                assert burst_s < timeout_s / 10, f"20 operations took {burst_s:.3f} s"
                assert answers == [(None, False, True, None)] * 4
                assert cache.breaker.short_circuits == 20
                assert await cache.ping() is False

                # the background probe keeps failing while memcached is frozen
                await asyncio.sleep(cooldown_s + timeout_s + 0.3)
                assert cache.breaker.is_open
            finally:
                memcached.resume()

            await wait_until_closed(cache, cooldown_s + timeout_s + 2)
            assert await cache.get(key) == b"kept", "nothing was written while open"
            assert await cache.ping() is True
        finally:
            await cache.close()

    async def test_concurrent_requests_stop_waiting_once_it_opens(
        self, memcached: MemcachedProcess
    ) -> None:
        timeout_s = 0.3
        cache = MemcachedCache.from_url(memcached.url, pool_size=8, timeout_s=timeout_s)
        key = cache_key(f"t-{uuid.uuid4().hex[:8]}", "principal", "token-1")

        async def request() -> float:
            # what a new token costs: several operations in a row
            started = time.monotonic()
            await cache.get(key)
            await cache.add(key + "-lock", b"1", 5)
            await cache.set(key, b"v", 60)
            await cache.delete(key + "-lock")
            return time.monotonic() - started

        try:
            assert await cache.ping()
            memcached.pause()
            try:
                durations = sorted(await asyncio.gather(*(request() for _ in range(8))))
                later = await request()
            finally:
                memcached.resume()
        finally:
            await cache.close()
        # without the breaker each request waits four timeouts (1.2 s); with it, the requests
        # whose timeouts opened it may have sent one more command before it opened
        threshold = cache.breaker.threshold
        assert durations[-1] < 2 * timeout_s + 0.15, durations
        assert all(d < timeout_s + 0.15 for d in durations[: -(threshold - 1)]), durations
        assert later < timeout_s / 10

    async def test_logs_once_per_opening(
        self, memcached: MemcachedProcess, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="app.cache")
        cache = MemcachedCache.from_url(
            memcached.url, pool_size=2, timeout_s=0.1, breaker_cooldown_s=0.3
        )
        try:
            assert await cache.ping()
            memcached.pause()
            try:
                for _ in range(50):
                    await cache.get("k")
            finally:
                memcached.resume()
            await wait_until_closed(cache, 3)
        finally:
            await cache.close()

        opened = [r for r in caplog.records if "circuit breaker open" in r.getMessage()]
        closed = [r for r in caplog.records if "circuit breaker closed" in r.getMessage()]
        timeouts = [r for r in caplog.records if "TimeoutError" in r.getMessage()]
        assert len(opened) == 1
        assert opened[0].levelno == logging.WARNING
        assert len(closed) == 1
        assert len(timeouts) == 1, "the failures' own rate limit still holds"

    async def test_a_refused_connection_does_not_open_it(self, memcached: MemcachedProcess) -> None:
        # refusals cost no waiting; a restarted memcached must be used again at once
        cache = MemcachedCache.from_url(memcached.url, pool_size=2, timeout_s=0.25)
        key = cache_key(f"t-{uuid.uuid4().hex[:8]}", "principal", "token-1")
        try:
            memcached.stop()
            for _ in range(10):
                assert await cache.get(key) is None
            assert not cache.breaker.is_open
            memcached.start()
            assert await cache.set(key, b"back", 60)
            assert await cache.get(key) == b"back"
        finally:
            await cache.close()

    async def test_a_pool_node_busy_with_its_own_traffic_is_not_ejected(
        self, memcached: MemcachedProcess
    ) -> None:
        """No connection free within the timeout is congestion here, not the node's silence:
        even a pool's node (which counts every failure) keeps its breaker closed."""
        cache = MemcachedCache(
            "127.0.0.1",
            int(memcached.url.rsplit(":", 1)[1]),
            pool_size=1,
            timeout_s=0.2,
            breaker_threshold=1,
            eject_on_error=True,
        )
        key = cache_key(f"t-{uuid.uuid4().hex[:8]}", "principal", "token-1")
        try:
            assert await cache.set(key, b"v", 60)
            # the one connection, taken as a request in flight holds it
            in_flight = await cache._slots.get()
            assert await cache.get(key) is None, "no connection free within the timeout"
            assert not cache.breaker.is_open
            cache._slots.put_nowait(in_flight)
            assert await cache.get(key) == b"v"
        finally:
            await cache.close()
