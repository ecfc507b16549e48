"""Cache keys: ``<namespace>:<kind>:<sha256 hex of the secret>``, never a token in clear.

The hash keeps every key within memcached's 250 bytes and keeps tokens out of the cache's key
space (and so out of ``stats cachedump``, slab dumps and proxies' logs).
"""

from __future__ import annotations

import functools
import hashlib

MAX_KEY_BYTES = 250
"""memcached's limit on a key's length."""


def cache_key(namespace: str, kind: str, secret: str) -> str:
    """The cache key of ``secret`` (a token) under ``namespace`` and ``kind``.

    The secret is hashed with SHA-256: keys never carry a token and never exceed 250 bytes.
    Raises ``ValueError`` when ``namespace`` or ``kind`` would make an invalid memcached key.
    """
    return digest_key(namespace, kind, secret_digest(secret))


def secret_digest(secret: str) -> str:
    """The SHA-256 of ``secret`` in hex: how a token is named in the cache and the database."""
    return hashlib.sha256(secret.encode()).hexdigest()


def digest_key(namespace: str, kind: str, digest: str) -> str:
    """The cache key of a secret already hashed by :func:`secret_digest`."""
    _check_prefix(namespace, kind)
    return f"{namespace}:{kind}:{digest}"


@functools.lru_cache(maxsize=64)
def _check_prefix(namespace: str, kind: str) -> None:
    prefix = f"{namespace}:{kind}:"
    if not namespace or not kind:
        raise ValueError("cache namespace and kind must not be empty")
    if not prefix.isascii() or not prefix.isprintable() or " " in prefix:
        raise ValueError("cache namespace and kind must be printable ASCII without spaces")
    if len(prefix) + 64 > MAX_KEY_BYTES:
        raise ValueError(f"cache namespace and kind leave no room for a key ({prefix!r})")
