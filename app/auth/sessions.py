"""The session store: sessions, their lineage and revocations, recorded in the database.

The database is the system of record (PostgreSQL; SQLite for ``local`` and the tests); the
caches in front of it may lose or be fed anything. Every statement that decides something is a
conditional write, so two workers or replicas acting at once cannot both win: a refresh holds a
lease on its session row, a logout ends the row, and whichever commits second sees the other.

Refresh tokens, and the answers kept for concurrent refreshes, are Fernet ciphertext
(:class:`~app.auth.cipher.SessionCipher`); tokens are named by their SHA-256 only. A database
that does not answer within ``timeout_s`` raises
:class:`~app.http.errors.SessionStoreUnavailable` (503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Insert,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.auth.cipher import SessionCipher
from app.auth.models import AuthSession, Revocation, SessionToken
from app.cache import secret_digest
from app.db.engine import single_statement_reads
from app.http.errors import SessionStoreUnavailable

log = logging.getLogger(__name__)

#: How long a user's cut-off is kept: Auth0 issues access tokens for 30 days at most.
CUTOFF_KEEP_S = 2_592_000 + 86_400
#: How long an ended session's rows stay for operators to look at before pruning removes them.
ENDED_KEEP_S = 86_400
_IN_CHUNK = 500
#: Sessions a user may have ended per transaction; a mass end commits in batches of this many.
_END_BATCH = 500

RefreshOutcome = Literal["moved", "ended", "lost"]
"""What became of a refresh's move: done; the session ended meanwhile; the lease lapsed."""


@dataclass(frozen=True)
class TokenSession:
    """An access token of a session, and that session, as the store has them now."""

    session_id: str
    sub: str
    refresh_token: SecretStr
    session_expires_at: int
    ended: bool
    token_expires_at: int
    refreshed_at: int | None
    successor: bytes | None
    """The answer this token's refresh gave (decrypted), kept for the grace."""


@dataclass(frozen=True)
class RevocationEntry:
    """A revocation in force: one token (``token_hash``), or a user's cut-off (``sub``)."""

    token_hash: str | None
    sub: str | None
    issued_before: int | None
    expires_at: int


@dataclass
class Ended:
    """What ending sessions left to do outside the database."""

    refresh_tokens: list[SecretStr] = field(default_factory=list)
    """Refresh tokens to revoke at Auth0."""
    revocations: list[RevocationEntry] = field(default_factory=list)
    """What is now denied, for this process's revocation list and its caches."""


@dataclass(frozen=True)
class Pruned:
    """Rows removed by :meth:`SessionStore.prune`."""

    sessions: int
    tokens: int
    revocations: int


class LoginRevoked(Exception):
    """The new access token is one a logout denied (an identical token within one second)."""


# Built once: SQLAlchemy memoizes a statement's cache key on the object, where a statement
# built per call is walked again on every execution (a tenth of a cold validation's CPU).
_IS_REVOKED = (
    select(literal(1))
    .where(
        or_(
            Revocation.token_hash == bindparam("token_hash"),
            and_(
                Revocation.sub == bindparam("sub"),
                Revocation.issued_before > bindparam("issued_at"),
            ),
        )
    )
    .limit(1)
)


class SessionStore:
    """Sessions, lineage and revocations in the database.

    Times that order events between replicas (the refresh lease, when a revocation was
    recorded) come from the database's clock, so replicas whose clocks disagree still agree on
    them; a revocation is kept until its token's ``exp`` plus ``leeway_s`` (the leeway the
    validator grants).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        cipher: SessionCipher,
        *,
        lifetime_s: int,
        timeout_s: float = 5.0,
        notify_channel: str | None = None,
        leeway_s: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``notify_channel``: PostgreSQL ``NOTIFY`` channel told of every new revocation."""
        self._engine = engine
        self._reads = single_statement_reads(engine)
        self._cipher = cipher
        self.lifetime_s = lifetime_s
        self._timeout_s = timeout_s
        self._postgres = engine.dialect.name == "postgresql"
        self.notify_channel = notify_channel if self._postgres else None
        self._clock = clock
        self._leeway_s = leeway_s

    def now(self) -> int:
        """The store's clock, Unix seconds."""
        return int(self._clock())

    def _db_now(self) -> ColumnElement[int]:
        """The database's clock, Unix seconds, as an SQL expression."""
        if self._postgres:
            return cast(func.floor(func.extract("epoch", func.now())), BigInteger)
        return cast(func.strftime("%s", "now"), BigInteger)

    async def start(
        self,
        *,
        sub: str,
        refresh_token: SecretStr,
        access_token: str,
        issued_at: int,
        expires_at: int,
    ) -> list[SecretStr]:
        """Record a new session whose first access token is ``access_token``.

        Returns the refresh tokens of sessions this one replaced: Auth0 access tokens carry no
        ``jti``, so two logins of one user within a second can get the same token, and the
        earlier session can then no longer be told apart; it is ended and its refresh token
        must be revoked.
        """
        now = self.now()
        session_id = secrets.token_hex(16)
        digest = secret_digest(access_token)
        row = {
            "id": session_id,
            "sub": sub,
            "refresh_token": self._cipher.encrypt(refresh_token.get_secret_value().encode()),
            "created_at": now,
            "expires_at": now + self.lifetime_s,
        }
        token = {"issued_at": issued_at, "expires_at": expires_at}
        async with self._guard("start a session"):
            async with self._reads.connect() as conn:
                denied = await conn.execute(
                    select(literal(1)).where(Revocation.token_hash == digest).limit(1)
                )
                if denied.first() is not None:
                    raise LoginRevoked()
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(AuthSession).values(row))
                    await conn.execute(
                        insert(SessionToken).values(
                            token_hash=digest, session_id=session_id, **token
                        )
                    )
                return []
            except IntegrityError:
                pass
            async with self._engine.begin() as conn:
                replaced = await conn.execute(
                    update(AuthSession)
                    .where(
                        AuthSession.id == _session_of(digest),
                        AuthSession.ended_at.is_(None),
                    )
                    .values(ended_at=now, end_reason="replaced")
                    .returning(AuthSession.refresh_token)
                )
                old = [self._decrypt_refresh(value) for (value,) in replaced.all()]
                await conn.execute(insert(AuthSession).values(row))
                await conn.execute(
                    update(SessionToken)
                    .where(SessionToken.token_hash == digest)
                    .values(session_id=session_id, refreshed_at=None, successor=None, **token)
                )
        return [value for value in old if value is not None]

    async def find(self, access_token: str) -> TokenSession | None:
        """The session ``access_token`` belongs to; None when it belongs to none."""
        digest = secret_digest(access_token)
        query = (
            select(
                SessionToken.session_id,
                AuthSession.sub,
                AuthSession.refresh_token,
                AuthSession.expires_at,
                AuthSession.ended_at,
                SessionToken.expires_at,
                SessionToken.refreshed_at,
                SessionToken.successor,
            )
            .join(AuthSession, AuthSession.id == SessionToken.session_id)
            .where(SessionToken.token_hash == digest)
        )
        async with self._guard("read a session"), self._reads.connect() as conn:
            found = (await conn.execute(query)).first()
        if found is None:
            return None
        (session_id, sub, sealed, session_expires, ended_at, token_expires, refreshed_at, succ) = (
            found
        )
        refresh_token = self._decrypt_refresh(sealed)
        if refresh_token is None:
            return None
        return TokenSession(
            session_id=session_id,
            sub=sub,
            refresh_token=refresh_token,
            session_expires_at=session_expires,
            ended=ended_at is not None or session_expires <= self.now(),
            token_expires_at=token_expires,
            refreshed_at=refreshed_at,
            successor=None if succ is None else self._cipher.decrypt(succ),
        )

    async def claim_refresh(
        self, access_token: str, owner: str, lease_s: float
    ) -> TokenSession | None:
        """Take the refresh lease of the live session whose current token is ``access_token``.

        One statement: the session, when this worker may now exchange its refresh token; None
        when it may not (no such session, ended, ``access_token`` already refreshed, or another
        holds the lease): :meth:`find` then tells which.
        """
        now, db_now = self.now(), self._db_now()
        current = (
            select(SessionToken.session_id)
            .where(
                SessionToken.token_hash == secret_digest(access_token),
                SessionToken.refreshed_at.is_(None),
            )
            .scalar_subquery()
        )
        statement = (
            update(AuthSession)
            .where(
                AuthSession.id == current,
                AuthSession.ended_at.is_(None),
                AuthSession.expires_at > now,
                or_(AuthSession.refreshing_until.is_(None), AuthSession.refreshing_until < db_now),
            )
            .values(refresh_owner=owner, refreshing_until=db_now + max(1, int(lease_s + 0.999)))
            .returning(
                AuthSession.id, AuthSession.sub, AuthSession.refresh_token, AuthSession.expires_at
            )
        )
        async with self._guard("claim a refresh"), self._engine.begin() as conn:
            claimed = (await conn.execute(statement)).first()
        if claimed is None:
            return None
        session_id, sub, sealed, expires_at = claimed
        refresh_token = self._decrypt_refresh(sealed)
        if refresh_token is None:
            await self.release_refresh(session_id, owner)
            return None
        return TokenSession(
            session_id=session_id,
            sub=sub,
            refresh_token=refresh_token,
            session_expires_at=expires_at,
            ended=False,
            token_expires_at=0,
            refreshed_at=None,
            successor=None,
        )

    async def release_refresh(self, session_id: str, owner: str) -> None:
        """Give the lease back (it lapses by itself when this fails)."""
        statement = (
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.refresh_owner == owner)
            .values(refresh_owner=None, refreshing_until=None)
        )
        try:
            async with self._guard("release a refresh"), self._engine.begin() as conn:
                await conn.execute(statement)
        except SessionStoreUnavailable:
            pass

    async def keep_rotated(self, session_id: str, owner: str, refresh_token: SecretStr) -> bool:
        """Store the refresh token Auth0 rotated to, before anything else can fail: the old one
        is dead at Auth0 and presenting it again would be reuse. False when the lease is no
        longer this owner's."""
        sealed = self._cipher.encrypt(refresh_token.get_secret_value().encode())
        statement = (
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.refresh_owner == owner)
            .values(refresh_token=sealed)
        )
        async with self._guard("keep a rotated refresh token"), self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def complete_refresh(
        self,
        *,
        session_id: str,
        owner: str,
        old_token: str,
        new_token: str,
        issued_at: int,
        expires_at: int,
        answer: bytes,
    ) -> tuple[RefreshOutcome, list[SecretStr]]:
        """Move the session to ``new_token``.

        ``"ended"``: a logout (or a block, a password change) won the race, and what this
        refresh minted must be revoked. ``"lost"``: the lease lapsed and another worker may be
        refreshing; nothing moved. With ``"moved"`` come the refresh tokens of sessions that an
        identical token took over (to revoke).
        """
        now = self.now()
        old, new = secret_digest(old_token), secret_digest(new_token)
        async with self._guard("complete a refresh"), self._engine.begin() as conn:
            moved = await conn.execute(
                update(AuthSession)
                .where(
                    AuthSession.id == session_id,
                    AuthSession.refresh_owner == owner,
                    AuthSession.ended_at.is_(None),
                )
                .values(refreshed_at=now, refresh_owner=None, refreshing_until=None)
            )
            if moved.rowcount != 1:
                ended = await conn.execute(
                    select(AuthSession.ended_at).where(AuthSession.id == session_id)
                )
                return ("lost" if ended.scalar() is None else "ended"), []
            if new == old:  # a refresh within the same second may return the very same token
                return "moved", []
            # a login of the same user in the same second may hold the very same token already
            taken = await conn.execute(
                update(AuthSession)
                .where(
                    AuthSession.id == _session_of(new),
                    AuthSession.id != session_id,
                    AuthSession.ended_at.is_(None),
                )
                .values(ended_at=now, end_reason="replaced")
                .returning(AuthSession.refresh_token)
            )
            replaced = self._decrypt_all(value for (value,) in taken.all())
            await conn.execute(
                update(SessionToken)
                .where(SessionToken.token_hash == old)
                .values(refreshed_at=now, successor=self._cipher.encrypt(answer))
            )
            values = {"session_id": session_id, "issued_at": issued_at, "expires_at": expires_at}
            await conn.execute(
                _insert(conn, SessionToken)
                .values(token_hash=new, **values)
                .on_conflict_do_update(
                    index_elements=[SessionToken.token_hash],
                    set_={**values, "refreshed_at": None, "successor": None},
                )
            )
        return "moved", replaced

    async def end_session(self, session_id: str, reason: str) -> None:
        """End one session without revoking its access tokens (Auth0 refused its refresh)."""
        statement = (
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.ended_at.is_(None))
            .values(ended_at=self.now(), end_reason=reason)
        )
        async with self._guard("end a session"), self._engine.begin() as conn:
            await conn.execute(statement)

    async def end_chain(self, access_token: str, *, sub: str, expires_at: int) -> Ended:
        """Log out: end the session ``access_token`` belongs to, whichever token of its chain it
        is, and deny every access token of that chain (and ``access_token`` itself, gateway
        session or not) until it expires."""
        now = self.now()
        digest = secret_digest(access_token)
        ended = Ended()
        async with self._guard("record a logout"), self._engine.begin() as conn:
            result = await conn.execute(
                update(AuthSession)
                .where(AuthSession.id == _session_of(digest), AuthSession.ended_at.is_(None))
                .values(ended_at=now, end_reason="logout")
                .returning(AuthSession.refresh_token)
            )
            ended.refresh_tokens = self._decrypt_all(value for (value,) in result.all())
            until = expires_at + self._leeway_s
            if until > now:
                await self._deny(conn, [RevocationEntry(digest, sub, None, until)])
                ended.revocations.append(RevocationEntry(digest, sub, None, until))
            session_id = (
                await conn.execute(
                    select(SessionToken.session_id).where(SessionToken.token_hash == digest)
                )
            ).scalar()
            if session_id is not None:
                ended.revocations += await self._deny_tokens(
                    conn, SessionToken.session_id == session_id, sub, now
                )
            await self._notify(conn)
        return ended

    async def end_user_sessions(
        self, sub: str, *, keep: str | None = None, cutoff: bool = False, reason: str
    ) -> Ended:
        """End every session of ``sub`` but the one of access token ``keep``, however many.

        Every unexpired access token of the user's other sessions is denied, whatever state the
        session is in. ``cutoff`` (a block, a deletion) first records, in a transaction of its
        own, that every token of the user issued before this second is dead, gateway session or
        not; a token issued later in this second (a login right after an unblock) stays valid.
        Sessions are then ended in batches, each committed by itself, so no user has too many.
        """
        now = self.now()
        ended = Ended()
        kept = None if keep is None else _session_of(secret_digest(keep))
        if cutoff:
            entry = RevocationEntry(None, sub, now, now + CUTOFF_KEEP_S)
            async with self._guard("record a cut-off"), self._engine.begin() as conn:
                await self._deny(conn, [entry], reason=reason)
                await self._notify(conn)
            ended.revocations.append(entry)
        others = [AuthSession.sub == sub]
        if kept is not None:
            others.append(or_(kept.is_(None), AuthSession.id != kept))
        while True:
            batch = (
                select(AuthSession.id)
                .where(*others, AuthSession.ended_at.is_(None))
                .limit(_END_BATCH)
                .scalar_subquery()
            )
            async with self._guard("end a user's sessions"), self._engine.begin() as conn:
                result = await conn.execute(
                    update(AuthSession)
                    .where(AuthSession.id.in_(batch))
                    .values(ended_at=now, end_reason=reason)
                    .returning(AuthSession.refresh_token)
                )
                rows = result.all()
            ended.refresh_tokens += self._decrypt_all(value for (value,) in rows)
            if len(rows) < _END_BATCH:
                break
        of_user = select(AuthSession.id).where(*others).scalar_subquery()
        async with self._guard("deny a user's tokens"), self._engine.begin() as conn:
            ended.revocations += await self._deny_tokens(
                conn, SessionToken.session_id.in_(of_user), sub, now, reason=reason
            )
            await self._notify(conn)
        return ended

    async def deny(self, access_token: str, *, sub: str, expires_at: int, reason: str) -> None:
        """Deny one access token until it expires (one a refresh minted after a logout)."""
        until = expires_at + self._leeway_s
        if until <= self.now():
            return
        entry = RevocationEntry(secret_digest(access_token), sub, None, until)
        async with self._guard("deny a token"), self._engine.begin() as conn:
            await self._deny(conn, [entry], reason=reason)
            await self._notify(conn)

    async def is_revoked(self, token_hash: str, sub: str, issued_at: int | None) -> bool:
        """One indexed read: is this token denied, or issued before its user's cut-off?"""
        params = {"token_hash": token_hash, "sub": sub, "issued_at": issued_at or 0}
        async with self._guard("check a revocation"), self._reads.connect() as conn:
            return (await conn.execute(_IS_REVOKED, params)).first() is not None

    async def revocations_since(self, since: int | None) -> tuple[list[RevocationEntry], int]:
        """Revocations still in force recorded at or after ``since`` (None: all), and the
        database's clock now (the next ``since``, less an overlap)."""
        query = select(
            Revocation.token_hash, Revocation.sub, Revocation.issued_before, Revocation.expires_at
        ).where(Revocation.expires_at > self.now())
        if since is not None:
            query = query.where(Revocation.created_at >= since)
        async with self._guard("read revocations"), self._reads.connect() as conn:
            clock = int((await conn.execute(select(self._db_now()))).scalar_one())
            rows = (await conn.execute(query)).all()
        return [RevocationEntry(*row) for row in rows], clock

    async def count_live_sessions(self, sub: str) -> int:
        """How many of ``sub``'s sessions are live (for operators and tests)."""
        query = select(func.count()).where(
            AuthSession.sub == sub,
            AuthSession.ended_at.is_(None),
            AuthSession.expires_at > self.now(),
        )
        async with self._guard("count sessions"), self._reads.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def prune(self) -> Pruned:
        """Remove expired sessions (and their tokens), sessions ended over a day ago, and
        revocations of tokens that have expired."""
        now = self.now()
        unexpired_token = exists().where(
            SessionToken.session_id == AuthSession.id, SessionToken.expires_at > now
        )
        # a session goes once nothing of it can be used: a logout or a password change may
        # still need to find its last tokens (and deny them) until they expire
        gone = and_(
            or_(AuthSession.expires_at <= now, AuthSession.ended_at <= now - ENDED_KEEP_S),
            ~unexpired_token,
        )
        doomed = select(AuthSession.id).where(gone).scalar_subquery()
        async with self._guard("prune"), self._engine.begin() as conn:
            tokens = await conn.execute(
                delete(SessionToken).where(SessionToken.session_id.in_(doomed))
            )
            sessions = await conn.execute(delete(AuthSession).where(gone))
            revocations = await conn.execute(delete(Revocation).where(Revocation.expires_at <= now))
        return Pruned(sessions.rowcount, tokens.rowcount, revocations.rowcount)

    async def _deny(
        self,
        conn: AsyncConnection,
        entries: Sequence[RevocationEntry],
        *,
        reason: str = "logout",
    ) -> None:
        rows = [
            {
                "token_hash": e.token_hash,
                "sub": e.sub,
                "issued_before": e.issued_before,
                "expires_at": e.expires_at,
                "reason": reason,
            }
            for e in entries
        ]
        # recorded on the database's clock: every replica reads new rows by it
        statement = _insert(conn, Revocation).values(created_at=self._db_now())
        await conn.execute(statement.on_conflict_do_nothing(), rows)

    async def _deny_tokens(
        self,
        conn: AsyncConnection,
        which: ColumnElement[bool],
        sub: str,
        now: int,
        *,
        reason: str = "logout",
    ) -> list[RevocationEntry]:
        """Deny every access token of the session tokens ``which`` selects that can still be
        used (its ``exp`` plus the leeway not past)."""
        rows = await conn.execute(
            select(SessionToken.token_hash, SessionToken.expires_at).where(
                which, SessionToken.expires_at + self._leeway_s > now
            )
        )
        entries = [
            RevocationEntry(digest, sub, None, exp + self._leeway_s) for digest, exp in rows.all()
        ]
        for start in range(0, len(entries), _IN_CHUNK):
            await self._deny(conn, entries[start : start + _IN_CHUNK], reason=reason)
        return entries

    async def _notify(self, conn: AsyncConnection) -> None:
        if self.notify_channel is not None:
            # delivered when the transaction commits, to every listening worker and replica
            await conn.execute(
                text("SELECT pg_notify(:channel, '')"), {"channel": self.notify_channel}
            )

    def _decrypt_refresh(self, sealed: bytes) -> SecretStr | None:
        plain = self._cipher.decrypt(sealed)
        if plain is None:
            log.warning(
                "a session's refresh token did not decrypt with any session key (rotated out "
                "too early?); the session is treated as absent"
            )
            return None
        return SecretStr(plain.decode())

    def _decrypt_all(self, sealed: Any) -> list[SecretStr]:
        return [value for value in map(self._decrypt_refresh, sealed) if value is not None]

    def _guard(self, what: str) -> AbstractAsyncContextManager[None]:
        return store_guard(what, self._timeout_s)


@asynccontextmanager
async def store_guard(what: str, timeout_s: float) -> AsyncIterator[None]:
    """Around the session store's database work: at most ``timeout_s``, and a failure (or the
    timeout) answered as :class:`SessionStoreUnavailable`, logged as ``could not <what>``."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("session store: could not %s (%s)", what, type(exc).__name__)
        raise SessionStoreUnavailable() from exc


def _session_of(digest: str) -> Any:
    """The id of the session access token ``digest`` belongs to, as a scalar subquery."""
    return (
        select(SessionToken.session_id).where(SessionToken.token_hash == digest).scalar_subquery()
    )


def _insert(conn: AsyncConnection, model: Any) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT``."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement: Insert = dialect.insert(model)
    return statement
