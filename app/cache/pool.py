"""A memcached pool: keys spread over several nodes by rendezvous hashing, a node that fails
ejected by its own circuit breaker while the others serve its keys.

Rendezvous (highest random weight) hashing: every key scores every node with a hash of
``node + key`` and goes to the highest-scoring node that is in service. Adding a node to N moves
only the keys the new node now wins, about 1/(N+1) of them; removing one moves only its own keys,
each to its second choice, so the other nodes keep their entries. It needs no ring and no virtual
nodes: with the handful of nodes a memcached pool has, scoring each is a few microseconds.

Each node is a :class:`~app.cache.memcached.MemcachedCache` with its own connections and its own
:class:`~app.cache.breaker.Breaker`, built with ``eject_on_error``: a refused connection counts
too, so a stopped node is ejected after ``breaker_threshold`` failures in a row. While a node's
breaker is open its keys go to their second choice; the breaker's background probe brings the
node back, and its keys with it. Entries the node still holds from before are only a cache:
principals are checked against the revocation list on every hit, so no logout comes back with
them, and sessions live in the database.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Unpack

from app.cache.memcached import MemcachedCache, NodeOptions


def _score(node: bytes, key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(node + b"\x00" + key, digest_size=8).digest())


class MemcachedPool:
    """Several memcached nodes as one :class:`~app.cache.base.Cache` (see the module docstring).

    Every operation goes to one node; failures are misses, as with one node. ``ping`` is True
    when at least one node answers: with fewer nodes the gateway still serves, with more misses.
    """

    def __init__(self, nodes: Sequence[MemcachedCache]) -> None:
        if not nodes:
            raise ValueError("a pool needs at least one node")
        self.nodes = tuple(nodes)
        self._ids = tuple(node.node.encode() for node in self.nodes)

    @classmethod
    def from_nodes(
        cls, addresses: Sequence[tuple[str, int]], **options: Unpack[NodeOptions]
    ) -> MemcachedPool:
        """A pool of ``addresses`` (host, port), each a :class:`MemcachedCache` with ``options``;
        a failing node is ejected (``eject_on_error``) unless the options say otherwise."""
        options.setdefault("eject_on_error", True)
        return cls([MemcachedCache(host, port, **options) for host, port in addresses])

    @property
    def hits(self) -> int:
        """``get`` hits, every node's."""
        return sum(node.hits for node in self.nodes)

    @property
    def misses(self) -> int:
        """``get`` misses (failures included), every node's."""
        return sum(node.misses for node in self.nodes)

    @property
    def errors(self) -> int:
        """Failed operations, every node's."""
        return sum(node.errors for node in self.nodes)

    def ranked(self, key: str) -> list[MemcachedCache]:
        """Every node in ``key``'s order of preference (the first is its home when all serve)."""
        raw = key.encode()
        scored = sorted(
            zip(self.nodes, self._ids, strict=True),
            key=lambda pair: _score(pair[1], raw),
            reverse=True,
        )
        return [node for node, _ in scored]

    def node_for(self, key: str) -> MemcachedCache:
        """The node that serves ``key`` now: the best-ranked one whose breaker is closed.

        With every breaker open, the home node, which answers at once as a miss.
        """
        ranked = self.ranked(key)
        return next((node for node in ranked if not node.breaker.is_open), ranked[0])

    async def get(self, key: str) -> bytes | None:
        """The value under ``key`` on its node; None when absent or the node fails."""
        return await self.node_for(key).get(key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store ``value`` on ``key``'s node for ``ttl_s`` seconds; False when not stored."""
        return await self.node_for(key).set(key, value, ttl_s)

    async def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        """``add`` on ``key``'s node (True also when that node fails: see MemcachedCache.add)."""
        return await self.node_for(key).add(key, value, ttl_s)

    async def delete(self, key: str) -> None:
        """Remove ``key`` from its node."""
        await self.node_for(key).delete(key)

    async def incr(self, key: str, delta: int = 1) -> int | None:
        """``incr`` on ``key``'s node: the new value; None when absent or the node fails."""
        return await self.node_for(key).incr(key, delta)

    async def ping(self) -> bool:
        """True when at least one node answers (see :meth:`ping_nodes` for each)."""
        return any((await self.ping_nodes()).values())

    async def ping_nodes(self) -> dict[str, bool]:
        """Each node's answer to a ping, asked at once (an ejected node answers False at once)."""
        answers = await asyncio.gather(*(node.ping() for node in self.nodes))
        return {node.node: answer for node, answer in zip(self.nodes, answers, strict=True)}

    async def close(self) -> None:
        """Close every node."""
        await asyncio.gather(*(node.close() for node in self.nodes))
