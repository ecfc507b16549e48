"""The in-process tier: a synchronous, bounded cache in front of the shared one."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from settings.model import CacheSettings


class Expiring(Protocol):
    """A cached value that knows when it stops being valid (Unix seconds)."""

    @property
    def expires_at(self) -> int:
        """When the value expires, Unix seconds."""
        ...


V = TypeVar("V", bound=Expiring)


class LocalTier(Generic[V]):
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
        self._entries: OrderedDict[str, tuple[V, float]] = OrderedDict()
        self._monotonic = monotonic
        self._wall = wall

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> LocalTier[V]:
        """The tier configured by ``local_ttl_s`` and ``local_max_entries``."""
        return cls(settings.local_ttl_s, settings.local_max_entries)

    @property
    def enabled(self) -> bool:
        """False when configured off."""
        return self.ttl_s > 0 and self.max_entries > 0

    def get(self, key: str) -> V | None:
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

    def put(self, key: str, principal: V, ttl_s: float) -> None:
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

    def discard_if(self, predicate: Callable[[V], bool]) -> int:
        """Forget every entry whose value ``predicate`` accepts; how many went."""
        doomed = [key for key, (value, _) in self._entries.items() if predicate(value)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
