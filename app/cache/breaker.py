"""A circuit breaker for one cache node: fail at once while the node is known to be down.

memcached that accepts connections but never answers costs every operation its whole timeout.
After ``threshold`` consecutive failures the breaker **opens**: operations are answered as
failures at once (no I/O) and one background task probes the node every ``cooldown_s``. The
first probe that succeeds closes the breaker; while a probe runs the breaker is **half-open**
and operations still fail at once, so no request ever waits on a node that may still be down.

One breaker guards one node; a pool of nodes would keep one per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)


class BreakerState(enum.Enum):
    """Where a breaker stands."""

    CLOSED = "closed"
    """Operations run; failures are counted."""
    OPEN = "open"
    """Operations fail at once; a probe is due after the cool-down."""
    HALF_OPEN = "half_open"
    """The probe is running; operations still fail at once."""


class BreakerObserver(Protocol):
    """Where a breaker reports (the gateway's metrics)."""

    def observe_cache_breaker(self, node: str, is_open: bool) -> None:
        """The breaker of ``node`` opened (half-open counts as open) or closed."""
        ...

    def count_cache_short_circuit(self, node: str) -> None:
        """An operation on ``node`` was answered as a failure without being tried."""
        ...


class Breaker:
    """Consecutive-failure circuit breaker with one background probe while open.

    Callers ask :meth:`allow` before an operation and report its outcome with
    :meth:`succeeded` or :meth:`failed`. Outcomes reported while the breaker is not closed (of
    operations already in flight when it opened) are ignored: only the probe closes it.
    ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        node: str,
        probe: Callable[[], Awaitable[bool]],
        *,
        threshold: int = 3,
        cooldown_s: float = 5.0,
        observer: BreakerObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.node = node
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self._probe = probe
        self._observer = observer
        self._clock = clock
        self._sleep = sleep
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_at = 0.0
        self._watch: asyncio.Task[None] | None = None
        self._stopped = False
        self.short_circuits = 0
        if observer is not None:
            observer.observe_cache_breaker(node, False)

    @property
    def state(self) -> BreakerState:
        """Closed, open or half-open."""
        return self._state

    @property
    def is_open(self) -> bool:
        """True while operations are answered as failures at once (open or half-open)."""
        return self._state is not BreakerState.CLOSED

    @property
    def open_for_s(self) -> float:
        """Seconds since the breaker last opened; 0 when closed."""
        return self._clock() - self._opened_at if self.is_open else 0.0

    @property
    def next_probe_in_s(self) -> float:
        """Seconds until the next probe starts; 0 when closed or while a probe runs."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._probe_at - self._clock())

    def allow(self) -> bool:
        """True when the operation may run; False (and counted) when it must fail at once."""
        if self._state is BreakerState.CLOSED:
            return True
        self.short_circuits += 1
        if self._observer is not None:
            self._observer.count_cache_short_circuit(self.node)
        return False

    def succeeded(self) -> None:
        """An operation was answered: the count of consecutive failures starts again."""
        if self._state is BreakerState.CLOSED:
            self._failures = 0

    def failed(self) -> None:
        """An operation failed or timed out; the ``threshold``-th in a row opens the breaker."""
        if self._state is not BreakerState.CLOSED or self._stopped:
            return
        self._failures += 1
        if self._failures >= self.threshold:
            self._open()
            log.warning(
                "memcached at %s: circuit breaker open after %d failures in a row; "
                "operations are answered as misses at once, probing every %g s",
                self.node,
                self._failures,
                self.cooldown_s,
            )
            # a context of its own: the probe belongs to no request, so its log lines must not
            # carry the request id of the one that happened to open the breaker
            self._watch = asyncio.get_running_loop().create_task(
                self._probe_until_closed(),
                name=f"cache-breaker-{self.node}",
                context=contextvars.Context(),
            )

    async def stop(self) -> None:
        """Stop probing (the cache is closing); the state stays as it is."""
        self._stopped = True
        task, self._watch = self._watch, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._probe_at = self._opened_at + self.cooldown_s
        if self._observer is not None:
            self._observer.observe_cache_breaker(self.node, True)

    async def _probe_until_closed(self) -> None:
        while True:
            await self._sleep(max(0.0, self._probe_at - self._clock()))
            self._state = BreakerState.HALF_OPEN
            try:
                answered = await self._probe()
            except Exception:  # a probe that breaks is a failed probe; the next one retries
                log.exception("memcached at %s: the breaker's probe failed", self.node)
                answered = False
            if answered:
                self._close()
                return
            self._state = BreakerState.OPEN
            self._probe_at = self._clock() + self.cooldown_s

    def _close(self) -> None:
        log.info(
            "memcached at %s: circuit breaker closed after %.1f s; operations run again",
            self.node,
            self.open_for_s,
        )
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._watch = None
        if self._observer is not None:
            self._observer.observe_cache_breaker(self.node, False)
