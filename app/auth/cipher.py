"""The session cipher: Fernet encryption of what the gateway keeps for a session.

Refresh tokens (and the answers kept for a concurrent refresh, which hold an access token) are
encrypted with the newest of ``SessionSettings.keys``; every listed key decrypts, so keys rotate
by prepending a new one and dropping the oldest once its records have expired. The same keys
also derive the key that authenticates cache entries (:mod:`app.cache.sealed`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from settings.model import SessionSettings


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
        self._secrets: list[bytes] = []
        for position, key in enumerate(keys, start=1):
            text = key.get_secret_value() if isinstance(key, SecretStr) else key
            try:
                fernets.append(Fernet(text.strip().encode()))
                self._secrets.append(base64.urlsafe_b64decode(text.strip().encode()))
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

    def derive_keys(self, purpose: str) -> list[bytes]:
        """One 32-byte key per session key (newest first) for ``purpose``, by HKDF-SHA256.

        Keys for different purposes are independent of each other and of the encryption keys,
        so a MAC key reveals nothing about the refresh tokens' key.
        """
        return [
            HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=f"venue-gateway {purpose}".encode(),
            ).derive(secret)
            for secret in self._secrets
        ]
