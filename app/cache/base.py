"""What the gateway needs from a cache: a small ``Protocol`` every store implements."""

from __future__ import annotations

from typing import Protocol


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

    async def incr(self, key: str, delta: int = 1) -> int | None:
        """memcached's atomic ``incr``: the new value; None when absent or unreachable."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers (readiness)."""
        ...

    async def close(self) -> None:
        """Release every connection."""
        ...
