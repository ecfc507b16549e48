"""Per user, the access tokens of that user's gateway sessions, so they can be ended at once.

Sessions live under the hash of their access token, so nothing leads from a user to them. This
index does: one small record per user (``<namespace>:user-sessions:<sha256 of sub>``), written
at every login and refresh (by :class:`~app.auth.flow.AuthFlow`), encrypted with the session
cipher because it holds bearer tokens. A password change ends every other session through it,
and deleting or blocking an account ends all of them
(:class:`~app.auth.session_end.UserSessions`).

An entry lives while its access token or its session can still be used; a refreshed token's
session has moved to the new token, so the old entry then lives only until that token's
``exp``. Concurrent writers (two tabs logging in through two workers) are serialised by a cache
``add`` lock; a writer that cannot get it within ``lock_wait_s`` writes anyway (at worst an
entry is lost, and that session then ends only when its access token expires).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass

from app.auth.sessions import SessionCipher
from app.cache import Cache, cache_key
from app.cache.lock import CacheLock, wait_for

log = logging.getLogger(__name__)

_LOCK_TTL_S = 5


@dataclass(frozen=True)
class IndexedSession:
    """One access token of a user, and how long it or its session can be used."""

    access_token: str
    expires_at: int  # the access token's exp
    session_until: int  # when its session record is gone at the latest

    @property
    def until(self) -> int:
        """When this entry stops mattering."""
        return max(self.expires_at, self.session_until)


class UserSessionIndex:
    """The per-user index of session access tokens, in the shared cache."""

    def __init__(
        self,
        cache: Cache,
        namespace: str,
        cipher: SessionCipher,
        *,
        max_entries: int = 50,
        lock_wait_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Keep at most ``max_entries`` per user (the oldest go first)."""
        self._cache = cache
        self._ns = namespace
        self._cipher = cipher
        self._max_entries = max_entries
        self._lock_wait_s = lock_wait_s
        self._clock = clock

    async def record(
        self,
        sub: str,
        access_token: str,
        *,
        expires_at: int,
        session_until: int,
        replaces: str | None = None,
    ) -> None:
        """Add ``access_token``; ``replaces`` is the token a refresh moved the session from."""
        async with self._locked(sub):
            entries = await self._read(sub)
            if replaces is not None:
                entries = [
                    IndexedSession(e.access_token, e.expires_at, e.expires_at)
                    if e.access_token == replaces
                    else e
                    for e in entries
                ]
            entries = [e for e in entries if e.access_token != access_token]
            entries.append(IndexedSession(access_token, expires_at, session_until))
            await self._write(sub, entries[-self._max_entries :])

    async def entries(self, sub: str) -> list[IndexedSession]:
        """The user's entries still in use."""
        return await self._read(sub)

    async def keep_only(self, sub: str, access_token: str | None) -> None:
        """Drop every entry but ``access_token``'s (None: drop them all)."""
        async with self._locked(sub):
            entries = await self._read(sub)
            await self._write(sub, [e for e in entries if e.access_token == access_token])

    def _key(self, kind: str, sub: str) -> str:
        return cache_key(self._ns, kind, sub)

    async def _read(self, sub: str) -> list[IndexedSession]:
        stored = await self._cache.get(self._key("user-sessions", sub))
        if stored is None:
            return []
        plain = self._cipher.decrypt(stored)
        if plain is None:
            log.warning("a user-session index did not decrypt (keys rotated?); treated as empty")
            return []
        try:
            entries = [IndexedSession(**item) for item in json.loads(plain)]
        except (ValueError, TypeError):
            log.warning("a user-session index is malformed; treated as empty")
            return []
        now = self._clock()
        return [e for e in entries if e.until > now]

    async def _write(self, sub: str, entries: list[IndexedSession]) -> None:
        key = self._key("user-sessions", sub)
        if not entries:
            await self._cache.delete(key)
            return
        ttl = max(e.until for e in entries) - self._clock()
        payload = json.dumps([asdict(e) for e in entries], separators=(",", ":")).encode()
        await self._cache.set(key, self._cipher.encrypt(payload), ttl)

    @asynccontextmanager
    async def _locked(self, sub: str) -> AsyncIterator[None]:
        lock = CacheLock(self._cache, self._key("user-sessions-lock", sub), _LOCK_TTL_S)

        async def take() -> bool | None:
            return True if await lock.acquire() else None

        if not await lock.acquire() and not await wait_for(
            take, self._lock_wait_s, max_delay_s=0.05
        ):
            log.info("user-session index busy for too long; writing without the lock")
        try:
            yield
        finally:
            await lock.release()
