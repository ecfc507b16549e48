"""Management API tokens: a fixed one, or ``client_credentials`` tokens cached until near expiry.

A Management token lives 24 h and the tenant allows a handful of token requests per second
(docs/emulator.md, "Management API"), so one token serves every request of every worker:

- in the process: kept in memory, and concurrent misses share one fetch (single flight);
- across workers: stored in the shared cache under the hash of the client id, encrypted with
  the session cipher (it is a bearer credential), with a TTL of ``expires_in`` minus a margin;
  a cache ``add`` lock makes one worker fetch while the others wait for its token.

When the cache is unreachable every worker fetches its own token: slower, still correct.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from app.auth.cipher import SessionCipher
from app.cache import Cache, cache_key
from app.cache.lock import CacheLock, wait_for
from app.cache.singleflight import SingleFlight
from app.clients.auth0 import TokenSet

log = logging.getLogger(__name__)

#: A token is dropped this long before it expires, so no call carries a dying token.
EXPIRY_MARGIN_S = 60
_LOCK_TTL_S = 15


class TokenProvider(Protocol):
    """Where the Management client gets its bearer token."""

    async def get(self) -> str:
        """A token believed valid now."""
        ...

    async def invalidate(self, token: str) -> bool:
        """Forget ``token`` after Auth0 refused it; True when a fresh one may be fetched."""
        ...


class StaticToken:
    """A token given by an operator (``gateway provision --token``); it cannot be renewed."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get(self) -> str:
        """The given token."""
        return self._token

    async def invalidate(self, token: str) -> bool:
        """Nothing to renew: False."""
        del token
        return False


class ClientCredentialsTokens:
    """Tokens from ``fetch`` (a ``client_credentials`` grant), cached as the module says.

    Without ``cache`` (command-line tools) the token is kept in this process only.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[TokenSet]],
        *,
        client_id: str,
        cache: Cache | None = None,
        cipher: SessionCipher | None = None,
        namespace: str = "vg",
        lock_wait_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Fetch with ``fetch``; share through ``cache`` (encrypted with ``cipher``) when given."""
        if cache is not None and cipher is None:
            raise ValueError("a shared token cache needs the session cipher")
        self._fetch = fetch
        self._cache = cache
        self._cipher = cipher
        self._key = cache_key(namespace, "mgmt-token", client_id)
        self._lock_key = cache_key(namespace, "mgmt-token-lock", client_id)
        self._lock_wait_s = lock_wait_s
        self._clock = clock
        self._current: tuple[str, float] | None = None  # (token, usable until, epoch seconds)
        self._flight: SingleFlight[str] = SingleFlight()
        self.fetches = 0

    async def get(self) -> str:
        """The cached token, or one fetched once however many callers ask at once."""
        current = self._current
        if current is not None and current[1] > self._clock():
            return current[0]
        return await self._flight.run(self._key, self._obtain)

    async def invalidate(self, token: str) -> bool:
        """Drop ``token`` here and in the shared cache (unless another worker replaced it)."""
        if self._current is not None and self._current[0] == token:
            self._current = None
        if self._cache is not None:
            shared = await self._read_shared()
            if shared is not None and shared[0] == token:
                await self._cache.delete(self._key)
        return True

    async def _obtain(self) -> str:
        shared = await self._read_shared()
        if shared is not None:
            self._current = shared
            return shared[0]
        if self._cache is None:
            return await self._fetch_and_store()
        lock = CacheLock(self._cache, self._lock_key, _LOCK_TTL_S)
        if not await lock.acquire():
            shared = await wait_for(self._read_shared, self._lock_wait_s, max_delay_s=0.2)
            if shared is not None:
                self._current = shared
                return shared[0]
            # the other worker failed or vanished; its lock is left to expire
        try:
            return await self._fetch_and_store()
        finally:
            await lock.release()

    async def _fetch_and_store(self) -> str:
        tokens = await self._fetch()
        self.fetches += 1
        now = self._clock()
        margin = min(EXPIRY_MARGIN_S, tokens.expires_in / 2)
        usable_until = now + tokens.expires_in - margin
        self._current = (tokens.access_token, usable_until)
        if self._cache is not None and self._cipher is not None:
            record = json.dumps(
                {"access_token": tokens.access_token, "usable_until": usable_until}
            ).encode()
            await self._cache.set(self._key, self._cipher.encrypt(record), usable_until - now)
        return tokens.access_token

    async def _read_shared(self) -> tuple[str, float] | None:
        if self._cache is None or self._cipher is None:
            return None
        stored = await self._cache.get(self._key)
        if stored is None:
            return None
        plain = self._cipher.decrypt(stored)
        if plain is None:
            log.warning("the shared Management token did not decrypt (session keys rotated?)")
            return None
        try:
            record = json.loads(plain)
            token, until = str(record["access_token"]), float(record["usable_until"])
        except (ValueError, KeyError, TypeError):
            return None
        return (token, until) if until > self._clock() else None
