"""Server-side sessions: where refresh tokens live, encrypted, under the access token's hash.

A refresh token never leaves the backend and is never logged. Session records, and the grace
records of a concurrent refresh (they hold the new access token), are Fernet-encrypted with the
newest of ``SessionSettings.keys``; every listed key decrypts, so keys rotate by prepending a new
one and dropping the oldest once its records have expired.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from app.cache import Cache, cache_key
from settings.model import SessionSettings

log = logging.getLogger("app.auth.sessions")


def generate_key() -> str:
    """A fresh Fernet key (url-safe base64 text), for ``GATEWAY_SESSION__KEYS``."""
    return Fernet.generate_key().decode()


class SessionCipher:
    """Fernet encryption with rotation: the first key encrypts, every key decrypts."""

    def __init__(self, keys: Sequence[str | SecretStr], *, is_ephemeral: bool = False) -> None:
        """Raise ``ValueError`` when ``keys`` is empty or one is not a Fernet key (never echoed)."""
        if not keys:
            raise ValueError("at least one session key is needed")
        fernets = []
        for position, key in enumerate(keys, start=1):
            text = key.get_secret_value() if isinstance(key, SecretStr) else key
            try:
                fernets.append(Fernet(text.strip().encode()))
            except ValueError:
                raise ValueError(
                    f"session key #{position} is not a Fernet key (32 url-safe base64 bytes)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self.is_ephemeral = is_ephemeral

    @classmethod
    def ephemeral(cls) -> SessionCipher:
        """A cipher with a key generated now: sessions die with the process (local use only)."""
        return cls([generate_key()], is_ephemeral=True)

    @classmethod
    def from_settings(
        cls, settings: SessionSettings, *, allow_ephemeral: bool = False
    ) -> SessionCipher:
        """The cipher of ``settings.keys``; an ephemeral one when there are none and allowed.

        The caller logs "using an ephemeral session key" when :attr:`is_ephemeral` is set.
        """
        if not settings.keys and allow_ephemeral:
            return cls.ephemeral()
        return cls(settings.keys)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt with the newest key."""
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes | None:
        """Decrypt with any key; None when no key fits or the token was tampered with."""
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            return None


class Session(BaseModel):
    """A login's server-side state; ``repr`` and JSON dumps mask the refresh token."""

    model_config = ConfigDict(frozen=True)

    refresh_token: SecretStr
    sub: str
    created_at: int
    expires_at: int


class SessionStore:
    """Sessions, grace records and logout markers in the cache, keyed by access-token hash."""

    def __init__(
        self,
        cache: Cache,
        namespace: str,
        cipher: SessionCipher,
        lifetime_s: int,
        grace_s: float,
    ) -> None:
        self._cache = cache
        self._namespace = namespace
        self._cipher = cipher
        self.lifetime_s = lifetime_s
        self.grace_s = grace_s

    def new_session(self, refresh_token: str, sub: str, *, now: int | None = None) -> Session:
        """A session starting ``now`` and lasting the configured lifetime."""
        created = int(time.time()) if now is None else now
        return Session(
            refresh_token=SecretStr(refresh_token),
            sub=sub,
            created_at=created,
            expires_at=created + self.lifetime_s,
        )

    async def save(self, access_token: str, session: Session) -> bool:
        """Store ``session`` under ``access_token`` until it expires; True when stored."""
        ttl = min(session.expires_at - time.time(), self.lifetime_s)
        record = json.dumps(
            {
                "refresh_token": session.refresh_token.get_secret_value(),
                "sub": session.sub,
                "created_at": session.created_at,
                "expires_at": session.expires_at,
            },
            separators=(",", ":"),
        ).encode()
        return await self._cache.set(
            self._key("session", access_token), self._cipher.encrypt(record), ttl
        )

    async def load(self, access_token: str) -> Session | None:
        """The session stored under ``access_token``; None when absent, expired or unreadable."""
        record = await self._read("session", access_token)
        if record is None:
            return None
        try:
            session = Session.model_validate_json(record)
        except ValidationError:
            log.warning("a stored session record is malformed; treated as absent")
            return None
        if session.expires_at <= time.time():
            return None
        return session

    async def delete(self, access_token: str) -> None:
        """Forget the session under ``access_token``."""
        await self._cache.delete(self._key("session", access_token))

    async def put_grace(
        self, old_access_token: str, payload: bytes, ttl_s: float | None = None
    ) -> bool:
        """Remember, encrypted, the answer to a refresh of ``old_access_token``.

        Concurrent refreshes of the same token read it instead of exchanging the (now rotated)
        refresh token again. ``ttl_s`` defaults to the configured grace period.
        """
        ttl = self.grace_s if ttl_s is None else ttl_s
        return await self._cache.set(
            self._key("grace", old_access_token), self._cipher.encrypt(payload), ttl
        )

    async def get_grace(self, old_access_token: str) -> bytes | None:
        """The grace payload for ``old_access_token``, if still there and readable."""
        return await self._read("grace", old_access_token)

    async def mark_revoked(self, access_token: str, until_epoch: int) -> bool:
        """Deny ``access_token`` until ``until_epoch`` (its ``exp``); True when recorded.

        Nothing is stored for a token that has already expired: it is refused anyway.
        """
        ttl = until_epoch - time.time()
        if ttl <= 0:
            return False
        return await self._cache.set(self._key("revoked", access_token), b"1", ttl)

    async def is_revoked(self, access_token: str) -> bool:
        """True when ``access_token`` was logged out.

        Fails open: while the cache is unreachable no marker can be read and this is False.
        """
        return await self._cache.get(self._key("revoked", access_token)) is not None

    def _key(self, kind: str, access_token: str) -> str:
        return cache_key(self._namespace, kind, access_token)

    async def _read(self, kind: str, access_token: str) -> bytes | None:
        stored = await self._cache.get(self._key(kind, access_token))
        if stored is None:
            return None
        plaintext = self._cipher.decrypt(stored)
        if plaintext is None:
            log.warning(
                "a stored %s record did not decrypt with any session key (rotated out or "
                "tampered); treated as absent",
                kind,
            )
        return plaintext
