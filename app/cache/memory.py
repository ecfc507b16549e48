"""An in-process store for ``memory://``: one process, development and tests."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MEMORY_MAX_ENTRIES = 100_000


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
