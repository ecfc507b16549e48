"""Authenticated cache entries: a value is served only if this deployment wrote it at this key.

memcached has no access control: anyone who can reach it can write any key, and environments
may share one. An entry that grants anything (a principal, a profile) is therefore stored as
``v1`` + HMAC-SHA256(key, ``<cache key> NUL <value>``) + value, the MAC key derived from the
session keys. An entry written by anyone else, or copied from another key, fails the check and
reads as a miss; the caller counts it and logs it (once a minute at most).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

_VERSION = b"v1"
_MAC_BYTES = 32
_LOG_EVERY_S = 60.0


class EntrySealer:
    """Seals values with the newest key and opens values sealed with any of ``keys``."""

    def __init__(
        self, keys: Sequence[bytes], *, on_rejected: Callable[[], object] | None = None
    ) -> None:
        """``keys`` newest first (at least one); ``on_rejected`` is told of every forged entry."""
        if not keys:
            raise ValueError("at least one MAC key is needed")
        self._keys = list(keys)
        self._on_rejected = on_rejected
        self._last_logged = -_LOG_EVERY_S
        self.rejected = 0

    def seal(self, key: str, value: bytes) -> bytes:
        """``value`` with its MAC, bound to the cache ``key``."""
        return _VERSION + _mac(self._keys[0], key, value) + value

    def open(self, key: str, sealed: bytes) -> bytes | None:
        """The value if its MAC holds for ``key`` under one of the keys; None (and counted)
        otherwise."""
        if sealed[:2] == _VERSION and len(sealed) >= 2 + _MAC_BYTES:
            mac, value = sealed[2 : 2 + _MAC_BYTES], sealed[2 + _MAC_BYTES :]
            for secret in self._keys:
                if hmac.compare_digest(mac, _mac(secret, key, value)):
                    return value
        self._reject()
        return None

    def _reject(self) -> None:
        self.rejected += 1
        if self._on_rejected is not None:
            self._on_rejected()
        now = time.monotonic()
        if now - self._last_logged >= _LOG_EVERY_S:
            self._last_logged = now
            # the key is a hash and the value untrusted: neither is worth printing
            log.warning(
                "a cache entry failed its authentication check (written by another deployment "
                "or tampered with, or the session keys changed) and was ignored; %d so far",
                self.rejected,
            )


def _mac(secret: bytes, key: str, value: bytes) -> bytes:
    return hmac.new(secret, key.encode() + b"\0" + value, hashlib.sha256).digest()
