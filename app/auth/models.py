"""The session tables: the database is the record of sessions and revocations.

Times are Unix seconds, like the ``exp`` and ``iat`` claims they are compared with.

- ``auth_sessions``: one login; its refresh token (Fernet ciphertext), its user, when it started,
  was last refreshed and expires, and when and why it ended. ``refresh_owner`` and
  ``refreshing_until`` are a lease: the one worker that may exchange its refresh token now.
- ``auth_session_tokens``: the session's lineage, every access token it was given (by hash).
  A refreshed token keeps, encrypted, the answer its refresh gave (``successor``) so that
  concurrent refreshes within the grace get the same answer.
- ``auth_revocations``: access tokens denied until their ``exp`` (``token_hash``), and per-user
  cut-offs (``sub`` with ``issued_before``: every token of that user issued before it is
  dead). ``created_at`` lets every worker pick up new rows.

A session logged into from a browser (cookie mode) also holds ``browser_handle``, the SHA-256
of the opaque value of its cookie, and ``browser_token``, its current access token (Fernet
ciphertext), which the gateway uses on the browser's behalf.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.engine import Base

DIGEST_CHARS = 64
SESSION_ID_CHARS = 32


class AuthSession(Base):
    """One login and the chain of its refreshes."""

    __tablename__ = "auth_sessions"
    __table_args__ = (
        Index(None, "sub"),
        Index(None, "expires_at"),
        Index(None, "browser_handle", unique=True),
    )

    id: Mapped[str] = mapped_column(String(SESSION_ID_CHARS), primary_key=True)
    sub: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)
    refreshed_at: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    refresh_owner: Mapped[str | None] = mapped_column(String(SESSION_ID_CHARS))
    refreshing_until: Mapped[int | None] = mapped_column(BigInteger)
    browser_handle: Mapped[str | None] = mapped_column(String(DIGEST_CHARS))
    browser_token: Mapped[bytes | None] = mapped_column(LargeBinary)


class SessionToken(Base):
    """An access token a session was given, by the SHA-256 of the token."""

    __tablename__ = "auth_session_tokens"
    __table_args__ = (Index(None, "session_id"),)

    token_hash: Mapped[str] = mapped_column(String(DIGEST_CHARS), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(SESSION_ID_CHARS), ForeignKey("auth_sessions.id", ondelete="CASCADE")
    )
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    refreshed_at: Mapped[int | None] = mapped_column(BigInteger)
    successor: Mapped[bytes | None] = mapped_column(LargeBinary)


class Revocation(Base):
    """A denied access token, or a user's cut-off, kept until nothing it denies can be used."""

    __tablename__ = "auth_revocations"
    __table_args__ = (
        Index(None, "token_hash", unique=True),
        Index(None, "sub"),
        Index(None, "created_at"),
        Index(None, "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str | None] = mapped_column(String(DIGEST_CHARS))
    sub: Mapped[str | None] = mapped_column(Text)
    issued_before: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32))
