"""A lock across worker processes on the shared cache, and the wait for another's answer.

``add`` takes the lock with a random owner value; only the owner releases it (a holder whose
lock already expired must not delete the next holder's). When memcached is unreachable ``add``
answers True ("no lock service, proceed"): the worst case is one duplicated upstream call.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.cache import Cache

T = TypeVar("T")


class CacheLock:
    """One named lock in the cache, held for at most ``ttl_s``."""

    def __init__(self, cache: Cache, key: str, ttl_s: float) -> None:
        self._cache = cache
        self._key = key
        self._ttl_s = ttl_s
        self._owner = secrets.token_hex(16).encode()
        self.held = False

    async def acquire(self) -> bool:
        """Take the lock unless another worker holds it; True when this one holds it now."""
        self.held = await self._cache.add(self._key, self._owner, self._ttl_s)
        return self.held

    async def release(self) -> None:
        """Let go, but only of a lock this one still owns."""
        if not self.held:
            return
        self.held = False
        # get-then-delete is not atomic; the window is one round trip, against a TTL of seconds
        if await self._cache.get(self._key) == self._owner:
            await self._cache.delete(self._key)


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], timeout_s: float, *, max_delay_s: float = 0.1
) -> T | None:
    """Poll ``probe`` with a growing delay until it answers something, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        found = await probe()
        if found is not None:
            return found
        delay = min(delay * 2, max_delay_s)
    return None
