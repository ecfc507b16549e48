"""The cache tiers: key hashing, a small ``Protocol``, memcached and in-memory stores, the
in-process tier, cross-process locks and single flight.

Every key is ``<namespace>:<kind>:<sha256 hex of the secret>`` (:func:`cache_key`), so no token
ever appears in a key. A memcached failure of any kind is a miss, never an exception: the
gateway revalidates upstream and keeps serving.
"""

from __future__ import annotations

from app.cache.base import Cache
from app.cache.breaker import Breaker, BreakerObserver, BreakerState
from app.cache.keys import MAX_KEY_BYTES, cache_key, digest_key, secret_digest
from app.cache.local import LocalTier
from app.cache.memcached import MemcachedCache, NodeObserver, last_operation_failed
from app.cache.memory import MemoryCache
from app.cache.pool import MemcachedPool
from settings.model import CacheSettings

__all__ = [
    "MAX_KEY_BYTES",
    "Breaker",
    "BreakerObserver",
    "BreakerState",
    "Cache",
    "LocalTier",
    "MemcachedCache",
    "MemcachedPool",
    "MemoryCache",
    "NodeObserver",
    "build_cache",
    "cache_key",
    "digest_key",
    "last_operation_failed",
    "secret_digest",
]


def build_cache(settings: CacheSettings, *, observer: NodeObserver | None = None) -> Cache:
    """The cache ``settings.url`` names: :class:`MemoryCache`, :class:`MemcachedCache` for one
    host (a memcached or a twemproxy), :class:`MemcachedPool` for several.

    ``observer`` (the metrics) hears of each node's operations and circuit breaker.
    """
    nodes = settings.nodes
    if not nodes:
        return MemoryCache()
    pool = MemcachedPool.from_nodes(
        nodes,
        pool_size=settings.pool_size,
        timeout_s=settings.timeout_s,
        breaker_threshold=settings.breaker_threshold,
        breaker_cooldown_s=settings.breaker_cooldown_s,
        observer=observer,
        # one node has nowhere to send its keys: only timeouts open its breaker
        eject_on_error=len(nodes) > 1,
    )
    return pool.nodes[0] if len(nodes) == 1 else pool
