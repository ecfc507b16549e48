"""A fixed-window counter per subject (a client IP) in the shared cache, across workers.

The window is ``window_s`` long and aligned to the epoch, so every worker counts into the same
key (``<namespace>:<kind>:<sha256 of "subject:window">``). Counting uses the cache's atomic
``incr``, seeding a missing counter with ``add``. When the cache is unreachable the limiter
lets requests through (fail open): sign-up stays available, and Auth0's own limits still apply
behind it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.cache import Cache, cache_key


@dataclass(frozen=True)
class Verdict:
    """Whether a hit is allowed, and how long until the window resets."""

    allowed: bool
    count: int
    retry_after_s: int


class FixedWindowLimiter:
    """At most ``limit`` hits per subject per ``window_s``; ``limit`` 0 turns it off."""

    def __init__(
        self,
        cache: Cache,
        namespace: str,
        kind: str,
        *,
        limit: int,
        window_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Count into ``cache`` under ``namespace`` and ``kind``."""
        self._cache = cache
        self._ns = namespace
        self._kind = kind
        self.limit = limit
        self.window_s = window_s
        self._clock = clock

    async def hit(self, subject: str) -> Verdict:
        """Count one hit for ``subject``."""
        key, retry_after = self._window_key(subject)
        if self.limit <= 0:
            return Verdict(True, 0, retry_after)
        count = await self._increment(key, ttl_s=retry_after + 1)
        return Verdict(count <= self.limit, count, retry_after)

    async def peek(self, subject: str) -> Verdict:
        """How ``subject`` stands in the current window, without counting a hit."""
        key, retry_after = self._window_key(subject)
        if self.limit <= 0:
            return Verdict(True, 0, retry_after)
        raw = await self._cache.get(key)
        try:
            count = int(raw or b"0")
        except ValueError:
            count = 0
        return Verdict(count < self.limit, count, retry_after)

    def _window_key(self, subject: str) -> tuple[str, int]:
        """The counter's key in the current window, and the seconds until the window ends."""
        now = self._clock()
        window = math.floor(now / self.window_s)
        retry_after = max(1, math.ceil((window + 1) * self.window_s - now))
        return cache_key(self._ns, self._kind, f"{subject}:{window}"), retry_after

    async def _increment(self, key: str, *, ttl_s: float) -> int:
        count = await self._cache.incr(key)
        if count is not None:
            return count
        if await self._cache.add(key, b"1", ttl_s):
            return 1  # also when the cache is down: add then "wins" (fail open)
        # another worker seeded the counter between our incr and our add
        return await self._cache.incr(key) or 1
