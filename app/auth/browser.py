"""Cookie mode: the gateway keeps a browser's tokens; the browser keeps an opaque handle.

A browser that logs in through ``POST /auth/session`` gets a random handle in an ``HttpOnly``
cookie, nothing else. The session row records the handle's SHA-256 and, encrypted, the
session's current access token: the handle is worth nothing without the gateway's database
and its session keys, and no token ever reaches JavaScript.

On each cookie request the handle finds the session's access token; one that has expired, or
will within the margin, is refreshed first through :meth:`AuthFlow.refresh`, so the tabs of a
browser (which share the cookie) and the workers and replicas serving them make one exchange
between them: the single flight, the lease on the session row and the grace answer of the
bearer refresh. The handle stays the same across refreshes: tabs whose requests are in flight
while another refreshes never hold a stale cookie.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import jwt
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.cipher import SessionCipher
from app.auth.flow import AuthFlow
from app.auth.models import AuthSession, SessionToken
from app.auth.principal import Principal
from app.auth.resolver import PrincipalResolver
from app.auth.sessions import SessionStore, store_guard
from app.cache import LocalTier, secret_digest
from app.db.engine import single_statement_reads
from app.http.errors import Unauthorized

log = logging.getLogger(__name__)

#: Random bytes in a handle: 256 bits, as ``secrets.token_urlsafe(32)`` (43 characters).
HANDLE_BYTES = 32
_HANDLE_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class BrowserLogin:
    """A new browser session: the cookie's value and who logged in."""

    handle: str
    principal: Principal


@dataclass(frozen=True)
class _Held:
    """A live browser session as read from the database (kept briefly in this process)."""

    session_id: str
    sealed: bytes
    access_token: str
    expires_at: int
    """The access token's ``exp`` (0 when it cannot be read; the resolver then refuses it)."""


def _expiry(token: str) -> int:
    """The ``exp`` of a token the gateway itself stored (its signature is checked later)."""
    try:
        return int(jwt.decode(token, options={"verify_signature": False})["exp"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return 0


def session_ended() -> Unauthorized:
    """The 401 of a cookie whose session is unknown, over or logged out."""
    return Unauthorized("The session has ended; log in again.")


class BrowserSessions:
    """Browser sessions over the session store: log in, resolve a handle, log out."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        cipher: SessionCipher,
        store: SessionStore,
        flow: AuthFlow,
        resolver: PrincipalResolver,
        refresh_margin_s: int,
        local_ttl_s: float = 0.0,
        local_max_entries: int = 0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``local_ttl_s``, ``local_max_entries``: the in-process tier of handles, as the one of
        principals (off: one database read per cookie request)."""
        self._local: LocalTier[_Held] = LocalTier(local_ttl_s, local_max_entries, wall=clock)
        self._engine = engine
        self._reads = single_statement_reads(engine)
        self._cipher = cipher
        self._store = store
        self._flow = flow
        self._resolver = resolver
        self._margin_s = refresh_margin_s
        self._timeout_s = timeout_s
        self._clock = clock

    async def login(self, username: str, password: str, *, client_ip: str | None) -> BrowserLogin:
        """Log in as :meth:`AuthFlow.login` does, and give the session a browser handle."""
        answer = await self._flow.login(username, password, client_ip=client_ip)
        handle = secrets.token_urlsafe(HANDLE_BYTES)
        session_of_token = (
            select(SessionToken.session_id)
            .where(SessionToken.token_hash == secret_digest(answer.access_token))
            .scalar_subquery()
        )
        statement = (
            update(AuthSession)
            .where(AuthSession.id == session_of_token, AuthSession.ended_at.is_(None))
            .values(
                browser_handle=secret_digest(handle),
                browser_token=self._cipher.encrypt(answer.access_token.encode()),
            )
        )
        async with self._guard("attach a browser"), self._engine.begin() as conn:
            attached = (await conn.execute(statement)).rowcount == 1
        if not attached:  # a logout of the same user's identical token won the race
            raise session_ended()
        principal = await self._resolver.resolve(answer.access_token)
        return BrowserLogin(handle, principal)

    async def principal(self, handle: str) -> Principal:
        """The caller behind ``handle``, its access token refreshed first when due.

        Raises :class:`Unauthorized` for an unknown, ended or logged-out session.
        """
        if not _HANDLE_SHAPE.fullmatch(handle):
            raise session_ended()
        held = self._local.get(secret_digest(handle)) or await self._held(handle)
        token = held.access_token
        if self._due(held):
            token = await self._refresh(handle, held)
        principal = self._resolver.cached_nowait(token)
        if principal is None:
            principal = await self._resolver.resolve(token)
        return principal

    async def access_token(self, handle: str) -> str:
        """The access token ``handle`` stands for now, for a route that needs the token itself
        (a password change keeps the caller's own session). Raises :class:`Unauthorized`."""
        if not _HANDLE_SHAPE.fullmatch(handle):
            raise session_ended()
        held = self._local.get(secret_digest(handle)) or await self._held(handle)
        return held.access_token

    async def logout(self, handle: str) -> None:
        """End the session behind ``handle`` as ``POST /auth/logout`` does; forget the handle.

        An unknown handle is no error: the browser is logged out either way.
        """
        found = await self._find(handle)
        if found is None:
            return
        held = found[0]
        self._local.discard(secret_digest(handle))
        try:
            await self._flow.logout(held.access_token)
        except Unauthorized:
            # the token no longer verifies (its signing key retired): end the row all the same
            await self._store.end_session(held.session_id, "logout")
        statement = (
            update(AuthSession)
            .where(AuthSession.browser_handle == secret_digest(handle))
            .values(browser_handle=None, browser_token=None)
        )
        async with self._guard("forget a browser"), self._engine.begin() as conn:
            await conn.execute(statement)

    async def _held(self, handle: str) -> _Held:
        """The live session behind ``handle``, or 401."""
        found = await self._find(handle)
        if found is None or not found[1]:
            raise session_ended()
        # a logout elsewhere reaches this process through the revocation list, which the
        # resolver applies to the token; the handle need not be read again for every request
        self._local.put(secret_digest(handle), found[0], self._local.ttl_s)
        return found[0]

    async def _find(self, handle: str) -> tuple[_Held, bool] | None:
        """The session behind ``handle`` and whether it is live; None for an unknown handle."""
        if not _HANDLE_SHAPE.fullmatch(handle):
            return None
        query = select(
            AuthSession.id, AuthSession.browser_token, AuthSession.ended_at, AuthSession.expires_at
        ).where(AuthSession.browser_handle == secret_digest(handle))
        async with self._guard("read a browser session"), self._reads.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        session_id, sealed, ended_at, expires_at = row
        if sealed is None:
            return None
        plain = self._cipher.decrypt(sealed)
        if plain is None:  # sealed with a session key since rotated out
            return None
        live = ended_at is None and expires_at > self._clock()
        token = plain.decode()
        return _Held(session_id, sealed, token, _expiry(token)), live

    def _due(self, held: _Held) -> bool:
        """True when the session's access token expires within the margin."""
        return held.expires_at - self._clock() <= self._margin_s

    async def _refresh(self, handle: str, held: _Held) -> str:
        try:
            answer = await self._flow.refresh(held.access_token)
        except Unauthorized:
            # a request of another tab, on another worker, may have refreshed (and moved the
            # handle on) longer ago than the grace: the handle's current token is the answer
            self._local.discard(secret_digest(handle))
            found = await self._find(handle)
            if found is None or not found[1]:
                raise
            again = found[0]
            if again.access_token == held.access_token or self._due(again):
                raise
            return again.access_token
        new = answer.access_token
        sealed = self._cipher.encrypt(new.encode())
        key = secret_digest(handle)
        # compare-and-set on the ciphertext read: a slower refresh never moves the handle back
        statement = (
            update(AuthSession)
            .where(AuthSession.browser_handle == key, AuthSession.browser_token == held.sealed)
            .values(browser_token=sealed)
        )
        async with self._guard("move a browser on"), self._engine.begin() as conn:
            moved = (await conn.execute(statement)).rowcount == 1
        if moved:
            moved_on = _Held(held.session_id, sealed, new, _expiry(new))
            self._local.put(key, moved_on, self._local.ttl_s)
        else:  # another request moved it first: read it afresh next time
            self._local.discard(key)
        return new

    def _guard(self, what: str) -> AbstractAsyncContextManager[None]:
        return store_guard(what, self._timeout_s)
