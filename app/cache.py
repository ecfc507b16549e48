"""The cache: key hashing, a small ``Protocol``, memcached and in-memory stores, the local tier.

Every key is ``<namespace>:<kind>:<sha256 hex of the secret>`` (:func:`cache_key`), so no token
ever appears in a key and every key fits memcached's 250 bytes. A memcached failure of any kind
is a miss, never an exception: the gateway revalidates upstream and keeps serving.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import aiomcache
from aiomcache.pool import Connection

from app.principal import Principal
from settings.model import CacheSettings

log = logging.getLogger("app.cache")

MAX_KEY_BYTES = 250
"""memcached's limit on a key's length."""

MAX_RELATIVE_TTL_S = 2_592_000
"""memcached reads an expiry above 30 days as an absolute Unix time."""

DEFAULT_MEMCACHED_PORT = 11211
DEFAULT_MEMORY_MAX_ENTRIES = 100_000

_T = TypeVar("_T")


def cache_key(namespace: str, kind: str, secret: str) -> str:
    """The cache key of ``secret`` (a token) under ``namespace`` and ``kind``.

    The secret is hashed with SHA-256: keys never carry a token and never exceed 250 bytes.
    Raises ``ValueError`` when ``namespace`` or ``kind`` would make an invalid memcached key.
    """
    _check_prefix(namespace, kind)
    return f"{namespace}:{kind}:{hashlib.sha256(secret.encode()).hexdigest()}"


@functools.lru_cache(maxsize=64)
def _check_prefix(namespace: str, kind: str) -> None:
    prefix = f"{namespace}:{kind}:"
    if not namespace or not kind:
        raise ValueError("cache namespace and kind must not be empty")
    if not prefix.isascii() or not prefix.isprintable() or " " in prefix:
        raise ValueError("cache namespace and kind must be printable ASCII without spaces")
    if len(prefix) + 64 > MAX_KEY_BYTES:
        raise ValueError(f"cache namespace and kind leave no room for a key ({prefix!r})")


class Cache(Protocol):
    """What the gateway needs from a cache. Implementations never raise on a backend failure."""

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None when absent, expired or unreachable."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store ``value`` for ``ttl_s`` seconds; True when stored. ``ttl_s <= 0`` stores none."""
        ...

    async def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store only if ``key`` is absent (the cross-process lock); True when this call won."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers (readiness)."""
        ...

    async def close(self) -> None:
        """Release every connection."""
        ...


class MemoryCache:
    """A bounded in-process cache with per-item expiry, for ``memory://`` (one process, dev).

    The least recently used entry is evicted beyond ``max_entries``. ``add`` is honest: it
    fails while a live entry exists. Counters ``hits``, ``misses``, ``errors`` (always 0) mirror
    :class:`MemcachedCache`.
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_MEMORY_MAX_ENTRIES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._max_entries = max(1, max_entries)
        self._clock = clock
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def _live(self, key: str) -> bytes | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        value, deadline = entry
        if deadline <= self._clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def _store(self, key: str, value: bytes, ttl_s: float) -> bool:
        if ttl_s <= 0:
            self._items.pop(key, None)
            return False
        self._items[key] = (value, self._clock() + ttl_s)
        self._items.move_to_end(key)
        while len(self._items) > self._max_entries:
            self._items.popitem(last=False)
        return True

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None when absent or expired."""
        value = self._live(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store ``value`` for ``ttl_s`` seconds; ``ttl_s <= 0`` drops ``key``, returns False."""
        return self._store(key, value, ttl_s)

    async def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store only if no live entry exists; False when one does or ``ttl_s <= 0``."""
        if self._live(key) is not None:
            return False
        return self._store(key, value, ttl_s)

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._items.pop(key, None)

    async def incr(self, key: str, delta: int = 1) -> int | None:
        """Add ``delta`` to a decimal counter, keeping its expiry; None when absent (memcached)."""
        current = self._live(key)
        if current is None:
            return None
        try:
            value = int(current) + delta
        except ValueError:
            return None
        self._items[key] = (str(value).encode(), self._items[key][1])
        return value

    async def ping(self) -> bool:
        """Always True: the process is its own backend."""
        return True

    async def close(self) -> None:
        """Forget everything."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


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


_Failed = Literal[_Outcome.FAILED]
_FAILED: _Failed = _Outcome.FAILED

# Per task (a context variable), so concurrent requests never see each other's outcome.
_last_failed: ContextVar[bool] = ContextVar("memcached_last_failed", default=False)


def last_operation_failed() -> bool:
    """True when this task's latest memcached operation failed (its miss was a failure).

    For metrics: ``get`` answers None both for an absent key and for an unreachable memcached.
    """
    return _last_failed.get()


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

    Counters for metrics: ``hits`` and ``misses`` of ``get`` (a failed ``get`` is a miss too),
    ``errors`` of every operation.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_MEMCACHED_PORT,
        *,
        pool_size: int = 32,
        timeout_s: float = 0.25,
    ) -> None:
        self.host = host
        self.port = port
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

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 32, timeout_s: float = 0.25) -> MemcachedCache:
        """A cache for ``memcached://host:port`` (port 11211 when omitted)."""
        parts = urlsplit(url)
        if parts.scheme != "memcached" or not parts.hostname:
            raise ValueError("expected memcached://host:port")
        return cls(
            parts.hostname,
            parts.port or DEFAULT_MEMCACHED_PORT,
            pool_size=pool_size,
            timeout_s=timeout_s,
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
        """True when memcached answers ``version`` within the timeout."""
        result = await self._run("ping", lambda client: client.version())
        return result is not _FAILED

    async def close(self) -> None:
        """Close every connection; later operations fail quietly (as misses)."""
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(self._timeout_s + 1):
                for _ in range(self._pool_size):
                    client = await self._slots.get()
                    if client is not None:
                        await client.close()
        except TimeoutError:
            log.warning("memcached: some connections were still busy at close")

    async def _run(self, op: str, command: Callable[[_Client], Awaitable[_T]]) -> _T | _Failed:
        _last_failed.set(self._closed)
        if self._closed:
            self.errors += 1
            return _FAILED
        try:
            async with asyncio.timeout(self._timeout_s):
                client = await self._slots.get()
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
            return _FAILED
        if self._failing:
            self._failing = False
            log.info("memcached at %s:%s answers again", self.host, self.port)
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
        log.warning(
            "memcached at %s:%s: %s failed (%s%s), served as a miss%s",
            self.host,
            self.port,
            op,
            kind,
            detail,
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


class LocalTier:
    """The in-process tier in front of the shared cache, for principals on the hot path.

    :meth:`get` is synchronous on purpose: no await between a request and its cached principal.
    An entry lives for ``min(ttl_s, local ttl, token expiry - now)`` and is never served past
    the principal's ``expires_at``. Bounded to ``max_entries``, least recently used evicted
    first. ``ttl_s == 0`` or ``max_entries == 0`` disables the tier.
    """

    def __init__(
        self,
        ttl_s: float,
        max_entries: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._monotonic = monotonic
        self._wall = wall

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> LocalTier:
        """The tier configured by ``local_ttl_s`` and ``local_max_entries``."""
        return cls(settings.local_ttl_s, settings.local_max_entries)

    @property
    def enabled(self) -> bool:
        """False when configured off."""
        return self.ttl_s > 0 and self.max_entries > 0

    def get(self, key: str) -> Principal | None:
        """The principal under ``key`` if still fresh and its token unexpired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, deadline = entry
        if deadline <= self._monotonic() or principal.expires_at <= self._wall():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return principal

    def put(self, key: str, principal: Principal, ttl_s: float) -> None:
        """Keep ``principal`` for the least of ``ttl_s``, the tier's TTL and its token's life."""
        if not self.enabled:
            return
        life = min(ttl_s, self.ttl_s, principal.expires_at - self._wall())
        if life <= 0:
            self._entries.pop(key, None)
            return
        # Monotonic deadline: a wall-clock jump can neither extend nor cut an entry short; the
        # wall-clock check in get() still enforces the token's own exp.
        self._entries[key] = (principal, self._monotonic() + life)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        """Forget ``key`` (logout, revocation)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def build_cache(settings: CacheSettings) -> Cache:
    """The cache ``settings.url`` names: :class:`MemoryCache` or :class:`MemcachedCache`."""
    if urlsplit(settings.url).scheme == "memory":
        return MemoryCache()
    return MemcachedCache.from_url(
        settings.url, pool_size=settings.pool_size, timeout_s=settings.timeout_s
    )
