"""The tenant's signing keys, cached (docs/emulator.md, "Discovery, keys and claims").

The pattern of auth0-python's ``JwksFetcher``: the key set is kept ``cache_s`` (600 s), and
an unknown ``kid`` triggers one refetch (Auth0 may have rotated its key). Those refetches
are rate-limited to one per ``min_refetch_interval_s``, so a flood of tokens with made-up
``kid`` values costs at most one upstream call per interval (on top of the scheduled refresh
every ``cache_s``); a failed fetch also waits that long before the next attempt. Concurrent
fetches coalesce into one. A failed fetch keeps serving the keys already cached.

The allowance is kept per cause, so a spray of made-up ``kid`` values cannot starve a real
rotation: a token presented by a caller (``"presented"``) spends the allowance above, while a
token Auth0 has just issued to the gateway itself at its token endpoint (``"issued"``: login,
refresh) may refetch once every :data:`ISSUED_REFETCH_INTERVAL_S`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import jwt

from app.http.errors import GatewayError, UpstreamUnavailable

log = logging.getLogger(__name__)

KEYS_UNAVAILABLE = "The identity provider's signing keys are unavailable; try again shortly."
"""The 503 of a token to check while no key set of the tenant could ever be fetched."""

#: How often a token Auth0 has just issued to the gateway may make the key set be fetched again.
ISSUED_REFETCH_INTERVAL_S = 1.0

KeyCause = Literal["presented", "issued"]

#: Fetches the JWKS document, e.g. :meth:`app.clients.auth0.Auth0AuthClient.fetch_jwks`.
JwksFetch = Callable[[], Awaitable[dict[str, Any]]]


class UnknownKeyError(LookupError):
    """No usable signing key has this ``kid``, even after the refetch allowed."""


class JwksCache:
    """Signing keys by ``kid``: cached, refetched once on an unknown ``kid``, rate-limited."""

    def __init__(
        self,
        fetch: JwksFetch,
        cache_s: float = 600.0,
        min_refetch_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Keys from ``fetch``, kept ``cache_s``; ``clock`` gives monotonic seconds."""
        self._fetch = fetch
        self._cache_s = cache_s
        self._min_interval_s = min_refetch_interval_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        self._intervals: dict[KeyCause, float] = {
            "presented": min_refetch_interval_s,
            "issued": min(min_refetch_interval_s, ISSUED_REFETCH_INTERVAL_S),
        }
        self._last_refetch: dict[KeyCause, float] = {}  # the last unknown-kid refetch, per cause
        self._last_failure: float | None = None
        self._attempts = 0
        self._lock = asyncio.Lock()

    @property
    def has_keys(self) -> bool:
        """True once a key set is cached (possibly stale): tokens can be validated."""
        return self._keys is not None

    async def warm(self) -> bool:
        """Fetch the key set now unless it is fresh; never raises. True when keys are cached.

        For startup and readiness probes; after a failure, the next attempt still waits
        ``min_refetch_interval_s``.
        """
        if self._keys is None or self._is_stale():
            await self._refetch(unknown_kid=False)
        return self._keys is not None

    async def get_key(self, kid: str, *, cause: KeyCause = "presented") -> jwt.PyJWK:
        """The RS256 signing key with this ``kid``; an unknown one may refetch, as ``cause``
        allows.

        Raises :class:`UnknownKeyError` when no usable key has it, and
        :class:`~app.http.errors.UpstreamUnavailable` when no key set could ever be fetched.
        """
        if self._keys is None or self._is_stale():
            # a stale set is refreshed by one caller; the others keep using it meanwhile
            if self._keys is None or not self._lock.locked():
                await self._refetch(unknown_kid=False)
        elif kid not in self._keys:
            await self._refetch(unknown_kid=True, cause=cause)
        if self._keys is None:
            raise UpstreamUnavailable(KEYS_UNAVAILABLE, retry_after=self._retry_after())
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKeyError(kid) from None

    def _is_stale(self) -> bool:
        return self._clock() - self._fetched_at >= self._cache_s

    def _recent(self, moment: float | None, now: float, interval_s: float | None = None) -> bool:
        interval = self._min_interval_s if interval_s is None else interval_s
        return moment is not None and now - moment < interval

    def _retry_after(self) -> int:
        if self._last_failure is None:
            return 1
        return int(max(1.0, self._min_interval_s - (self._clock() - self._last_failure)))

    async def _refetch(self, *, unknown_kid: bool, cause: KeyCause = "presented") -> None:
        """One fetch, unless another caller just made one or the rate limit says no."""
        seen = self._attempts
        async with self._lock:
            if self._attempts != seen:
                return  # a fetch finished while we waited: use its result
            now = self._clock()
            interval = self._intervals[cause]
            if self._recent(self._last_failure, now, interval):
                return
            if unknown_kid and self._recent(self._last_refetch.get(cause), now, interval):
                return
            previous = self._last_refetch.get(cause)
            if unknown_kid:
                self._last_refetch[cause] = now
            try:
                document = await self._fetch()
                keys = _usable_keys(document)
            except asyncio.CancelledError:
                # a cancelled fetch does not count
                if previous is None:
                    self._last_refetch.pop(cause, None)
                else:
                    self._last_refetch[cause] = previous
                raise
            except Exception as exc:  # whatever went wrong, cached keys stay in service
                self._attempts += 1
                self._last_failure = now
                # a JWKS fetch carries no credential, so the message is safe to log
                reason = (
                    exc.code if isinstance(exc, GatewayError) else f"{type(exc).__name__}: {exc}"
                )
                if self._keys is None:
                    log.warning("cannot fetch the JWKS and none is cached: %s", reason)
                else:
                    log.warning("cannot refresh the JWKS, serving the cached keys: %s", reason)
                return
            self._attempts += 1
            self._last_failure = None
            self._keys = keys
            self._fetched_at = self._clock()
            log.info("JWKS fetched: %d signing key(s)", len(keys))


def _usable_keys(document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """The RS256 signature keys of a JWKS document; ``ValueError`` if there are none.

    Keys without ``alg`` are accepted: the tenant flag ``remove_alg_from_jwks`` drops it.
    """
    raw_keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(raw_keys, list):
        raise ValueError("the JWKS has no keys list")
    keys: dict[str, jwt.PyJWK] = {}
    for raw in raw_keys:
        if not isinstance(raw, dict):
            continue
        kid = raw.get("kid")
        if (
            not isinstance(kid, str)
            or not kid
            or raw.get("kty") != "RSA"
            or raw.get("use", "sig") != "sig"
            or raw.get("alg", "RS256") != "RS256"
        ):
            continue
        try:
            keys[kid] = jwt.PyJWK(raw, algorithm="RS256")
        except jwt.PyJWTError:
            log.warning("skipping an unusable JWKS key (kid %r)", kid[:64])
    if not keys:
        raise ValueError("the JWKS has no usable RS256 signing key")
    return keys
