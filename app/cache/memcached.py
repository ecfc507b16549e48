"""memcached over aiomcache: a bounded connection pool where every failure is a miss, behind a
circuit breaker (:mod:`app.cache.breaker`)."""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Literal, Protocol, TypedDict, TypeVar

import aiomcache
from aiomcache.pool import Connection

from app.cache.breaker import Breaker, BreakerObserver
from settings.model import DEFAULT_MEMCACHED_PORT, memcached_nodes

log = logging.getLogger(__name__)

MAX_RELATIVE_TTL_S = 2_592_000
"""memcached reads an expiry above 30 days as an absolute Unix time."""

PROBE_KEY = b"vg-probe"
"""What ``ping`` and the breaker's probe ``get``: twemproxy does not proxy ``version``."""

_T = TypeVar("_T")


class _Client(aiomcache.Client):
    """aiomcache's client with a reply reader that fails on a closed socket instead of spinning."""

    async def _execute_simple_command(self, conn: Connection, raw_command: bytes) -> bytes:
        conn.writer.write(raw_command)
        await conn.writer.drain()
        # aiomcache 0.8.2 loops on readline(), which returns b"" without yielding once the server
        # has closed the socket: a busy loop that freezes the event loop, so no timeout can fire
        # (aio-libs/aiomcache#502). readuntil() raises IncompleteReadError instead.
        line = await conn.reader.readuntil(b"\r\n")
        return line[:-2]


class _Outcome(enum.Enum):
    FAILED = enum.auto()
    TIMED_OUT = enum.auto()
    BUSY = enum.auto()  # no connection of the pool came free in time: congestion here


_Failed = Literal[_Outcome.FAILED]
_FAILED: _Failed = _Outcome.FAILED
_TimedOut = Literal[_Outcome.TIMED_OUT]
_TIMED_OUT: _TimedOut = _Outcome.TIMED_OUT
_Busy = Literal[_Outcome.BUSY]
_BUSY: _Busy = _Outcome.BUSY


class NodeObserver(BreakerObserver, Protocol):
    """Where a memcached node reports: its breaker, and the outcome of every operation."""

    def count_cache_operation(self, node: str, failed: bool) -> None:
        """One operation on ``node`` answered (``failed`` False) or failed (short-circuits too)."""
        ...


# Per task (a context variable), so concurrent requests never see each other's outcome.
_last_failed: ContextVar[bool] = ContextVar("memcached_last_failed", default=False)


def last_operation_failed() -> bool:
    """True when this task's latest memcached operation failed (its miss was a failure).

    For metrics: ``get`` answers None both for an absent key and for an unreachable memcached.
    """
    return _last_failed.get()


class NodeOptions(TypedDict, total=False):
    """The keyword options of :class:`MemcachedCache`, for whoever builds nodes in numbers."""

    pool_size: int
    timeout_s: float
    breaker_threshold: int
    breaker_cooldown_s: float
    observer: NodeObserver | None
    eject_on_error: bool


class MemcachedCache:
    """A memcached store over aiomcache; every failure is a miss, never an exception.

    Connections: up to ``pool_size`` one-connection aiomcache clients, each made on first need.
    A command that fails or times out may leave a reply in flight, so its client is closed and
    the slot starts afresh; this is also how the cache recovers by itself when memcached is
    restarted. Every operation, waiting for a slot included, runs under ``timeout_s``.

    On failure ``get`` returns None, ``set`` False, ``delete`` and ``close`` nothing, ``ping``
    False, and ``add`` returns **True**: with no lock service reachable, a caller waiting for a
    lock would wait for nothing, so it proceeds (at worst a duplicated upstream call). Failures
    are logged at most about once per second per kind (exception type), never with a key.

    Circuit breaker (:attr:`breaker`): after ``breaker_threshold`` consecutive timeouts of
    commands sent to memcached, every operation returns its failure value at once, without
    touching memcached, until a background probe (a ``get`` of :data:`PROBE_KEY`, one every
    ``breaker_cooldown_s``) is answered. So a memcached that accepts connections but never
    answers costs the requests that meet it about ``breaker_threshold`` timeouts in all, not
    one timeout per operation.
    Failures that cost no waiting (a refused connection, an error reply) do not count, unless
    ``eject_on_error`` (a node of a pool, whose keys the other nodes serve while its breaker is
    open); an answer resets the count.

    Commands: ``get``, ``set``, ``add``, ``delete``, ``incr`` and nothing else (``ping`` is a
    ``get``), all of which twemproxy proxies, so one twemproxy endpoint works as a node.

    Counters for metrics: ``hits`` and ``misses`` of ``get`` (a failed ``get`` is a miss too),
    ``errors`` of every operation (short-circuited ones included).
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_MEMCACHED_PORT,
        *,
        pool_size: int = 32,
        timeout_s: float = 0.25,
        breaker_threshold: int = 3,
        breaker_cooldown_s: float = 5.0,
        observer: NodeObserver | None = None,
        eject_on_error: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.node = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._eject_on_error = eject_on_error
        self._observer = observer
        self._timeout_s = timeout_s
        self._pool_size = max(1, pool_size)
        # LIFO: light traffic keeps reusing one warm connection instead of opening pool_size.
        self._slots: asyncio.LifoQueue[_Client | None] = asyncio.LifoQueue()
        for _ in range(self._pool_size):
            self._slots.put_nowait(None)
        self._closed = False
        self._failing = False
        self._log_state: dict[str, tuple[float, int]] = {}
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.breaker = Breaker(
            self.node,
            self._probe,
            threshold=breaker_threshold,
            cooldown_s=breaker_cooldown_s,
            observer=observer,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pool_size: int = 32,
        timeout_s: float = 0.25,
        breaker_threshold: int = 3,
        breaker_cooldown_s: float = 5.0,
        observer: NodeObserver | None = None,
    ) -> MemcachedCache:
        """A cache for ``memcached://host:port`` (port 11211 when omitted); one host only."""
        nodes = memcached_nodes(url)
        if len(nodes) != 1:
            raise ValueError("one host expected: a pool is app.cache.pool.MemcachedPool")
        [(host, port)] = nodes
        return cls(
            host,
            port,
            pool_size=pool_size,
            timeout_s=timeout_s,
            breaker_threshold=breaker_threshold,
            breaker_cooldown_s=breaker_cooldown_s,
            observer=observer,
        )

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``; None when absent, expired or memcached fails."""
        raw = key.encode()
        result = await self._run("get", lambda client: client.get(raw))
        if result is _FAILED or result is None:
            self.misses += 1
            return None
        self.hits += 1
        return result

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store ``value`` for ``ttl_s`` seconds; False when not stored.

        ``ttl_s <= 0`` stores nothing and removes any older value. Sub-second TTLs round up to 1
        (memcached counts whole seconds; 0 would mean "never expires").
        """
        exptime = _exptime(ttl_s)
        if exptime is None:
            await self.delete(key)
            return False
        raw = key.encode()
        result = await self._run("set", lambda client: client.set(raw, value, exptime))
        return result is not _FAILED and result

    async def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store only if ``key`` is absent: True when this call won the key.

        Also True when memcached cannot be reached: "no lock service, proceed" (see the class
        docstring). False when another holder has the key, or ``ttl_s <= 0``.
        """
        exptime = _exptime(ttl_s)
        if exptime is None:
            return False
        raw = key.encode()
        result = await self._run("add", lambda client: client.add(raw, value, exptime))
        return result is _FAILED or result

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present; failures are swallowed."""
        raw = key.encode()
        await self._run("delete", lambda client: client.delete(raw))

    async def incr(self, key: str, delta: int = 1) -> int | None:
        """memcached's atomic ``incr``: the new value; None when absent or memcached fails."""
        raw = key.encode()

        async def incr(client: _Client) -> int | None:
            try:
                value: int | None = await client.incr(raw, delta)
            except aiomcache.ClientException as exc:
                # aiomcache raises on NOT_FOUND, an ordinary answer (its reply was fully read)
                if str(exc).endswith("NOT_FOUND'"):
                    return None
                raise
            return value

        result = await self._run("incr", incr)
        return None if result is _FAILED else result

    async def ping(self) -> bool:
        """True when memcached answers a ``get`` of :data:`PROBE_KEY` within the timeout.

        False at once while the breaker is open (:attr:`breaker` says so).
        """
        result = await self._run("ping", lambda client: client.get(PROBE_KEY))
        return result is not _FAILED

    async def close(self) -> None:
        """Close every connection; later operations fail quietly (as misses)."""
        if self._closed:
            return
        self._closed = True
        await self.breaker.stop()
        try:
            async with asyncio.timeout(self._timeout_s + 1):
                for _ in range(self._pool_size):
                    client = await self._slots.get()
                    if client is not None:
                        await client.close()
        except TimeoutError:
            log.warning("memcached: some connections were still busy at close")

    async def _run(self, op: str, command: Callable[[_Client], Awaitable[_T]]) -> _T | _Failed:
        if self._closed or not self.breaker.allow():
            _last_failed.set(True)
            self.errors += 1
            self._count(failed=True)
            return _FAILED
        result = await self._attempt(op, command)
        if result is _BUSY:
            # the node said nothing either way: its breaker neither opens nor closes
            self._count(failed=True)
            return _FAILED
        if result is _TIMED_OUT or (result is _FAILED and self._eject_on_error):
            self.breaker.failed()
            self._count(failed=True)
            return _FAILED
        if result is not _FAILED:
            self.breaker.succeeded()
        self._count(failed=result is _FAILED)
        return result

    def _count(self, *, failed: bool) -> None:
        if self._observer is not None:
            self._observer.count_cache_operation(self.node, failed)

    async def _probe(self) -> bool:
        """The breaker's probe: a ``get`` of :data:`PROBE_KEY`, bypassing the breaker itself."""
        if self._closed:
            return False
        result = await self._attempt("probe", lambda client: client.get(PROBE_KEY))
        return result is not _FAILED and result is not _TIMED_OUT and result is not _BUSY

    async def _attempt(
        self, op: str, command: Callable[[_Client], Awaitable[_T]]
    ) -> _T | _Failed | _TimedOut | _Busy:
        """Run ``command`` on a pooled connection; TIMED_OUT when memcached held it too long,
        BUSY when no connection came free in time.

        Only TIMED_OUT always counts for the breaker (FAILED too, for a pool's nodes): a refused
        or reset connection or an error reply costs no waiting (and counting it would keep a
        restarted memcached unused for a cool-down), and BUSY is the pool's congestion, not the
        node's silence.
        """
        _last_failed.set(False)
        has_slot = False
        try:
            async with asyncio.timeout(self._timeout_s):
                client = await self._slots.get()
                has_slot = True
                try:
                    client = client or _Client(self.host, self.port, pool_size=1, pool_minsize=1)
                    result = await command(client)
                except BaseException:
                    # The connection may still owe a reply to this command; reused, it would
                    # hand that stale reply to the next caller (STORED for someone else's add).
                    stale, client = client, None
                    if stale is not None:
                        await stale.close()
                    raise
                finally:
                    self._slots.put_nowait(client)
        except Exception as exc:  # any failure is a miss: the gateway keeps serving
            _last_failed.set(True)
            self._record_failure(op, exc)
            if isinstance(exc, TimeoutError):
                return _TIMED_OUT if has_slot else _BUSY
            return _FAILED
        if self._failing:
            self._failing = False
            log.info("memcached at %s answers again", self.node)
        return result

    def _record_failure(self, op: str, exc: Exception) -> None:
        self.errors += 1
        self._failing = True
        kind = type(exc).__name__
        now = time.monotonic()
        last, suppressed = self._log_state.get(kind, (-math.inf, 0))
        if now - last < 1.0:
            self._log_state[kind] = (last, suppressed + 1)
            return
        self._log_state[kind] = (now, 0)
        detail = f": {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else ""
        quieted = f"; {suppressed} more since the last report" if suppressed else ""
        outcome = "the breaker stays open" if op == "probe" else "served as a miss"
        log.warning(
            "memcached at %s: %s failed (%s%s), %s%s",
            self.node,
            op,
            kind,
            detail,
            outcome,
            quieted,
        )


def _exptime(ttl_s: float) -> int | None:
    """memcached's exptime for a TTL: whole seconds, absolute beyond 30 days, None for none."""
    if ttl_s <= 0:
        return None
    seconds = math.ceil(ttl_s)
    if seconds > MAX_RELATIVE_TTL_S:
        return int(time.time()) + seconds
    return seconds
