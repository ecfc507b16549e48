"""The request path: bearer token -> principal, through the cache tiers and the token service.

1. the in-process tier (a plain dict lookup, no ``await``),
2. memcached (shared by every worker),
3. the token service: local JWT validation against the tenant's JWKS, ``/userinfo`` for the
   profile at most once per user per ``profile_ttl_s``, ``/userinfo`` for opaque tokens.

Concurrent misses for one token make one validation: single flight in the process and a
memcached ``add`` lock across processes. Keys are hashes; the raw token is never a key.

Revocations: a cold validation asks the database (one indexed read); a memcached hit is checked
against this process's :class:`~app.auth.revocations.RevocationList` (no round trip), which also
drops revoked entries from the in-process tier as it learns of them. memcached entries are
sealed (:class:`~app.cache.sealed.EntrySealer`): one that anybody else wrote is a miss.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from app.auth.principal import Principal
from app.auth.revocations import RevocationList
from app.auth.sessions import RevocationEntry, SessionStore
from app.cache import Cache, LocalTier, cache_key, digest_key, last_operation_failed
from app.cache.lock import CacheLock, wait_for
from app.cache.sealed import EntrySealer
from app.cache.singleflight import SingleFlight
from app.clients.auth0 import Auth0AuthClient
from app.clients.token_validator import TokenValidator
from app.http.errors import (
    GatewayError,
    SessionStoreUnavailable,
    Unauthorized,
    UpstreamUnavailable,
)
from app.observability import tracing
from app.observability.metrics import Metrics
from settings import Auth0Settings

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger("app.auth.resolver")

_PROFILE_RETRY_TTL_S = 60
_MAX_LOCAL_PROFILES = 10_000
_STORE_RETRY_S = 5.0

OPAQUE_UNCHECKED = "Cannot validate the token with the identity provider."
"""The 503 of an opaque token whose ``/userinfo`` check failed."""


class PrincipalResolver:
    """Turns access tokens into principals, caching them no longer than the token lives."""

    def __init__(
        self,
        *,
        settings: Auth0Settings,
        namespace: str,
        cache: Cache,
        local: LocalTier[Principal],
        validator: TokenValidator,
        auth0: Auth0AuthClient,
        store: SessionStore,
        revocations: RevocationList,
        sealer: EntrySealer,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self._tracer = tracer
        self._local_lookups = self.metrics.local_lookups
        self._shared_lookups = self.metrics.shared_lookups
        self._settings = settings
        # a validation makes at most a JWKS fetch and a /userinfo call, each within timeout_s
        self._lock_ttl_s = 2 * settings.timeout_s + 1
        self._ns = namespace
        self._cache = cache
        self._local = local
        self._validator = validator
        self._auth0 = auth0
        self._store = store
        self._revocations = revocations
        self._sealer = sealer
        self._store_down_until = 0.0
        revocations.on_revoked(self._purge)
        self._flights: SingleFlight[Principal] = SingleFlight(
            self.metrics.validation_waits.inc, tracer=tracer
        )
        # sub -> (monotonic deadline, profile, or None after a failed /userinfo: retry later)
        self._profiles_here: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._profile_flights: SingleFlight[tuple[dict[str, Any] | None, bool]] = SingleFlight()
        self.validations = 0

    @property
    def coalesced_waits(self) -> int:
        """Callers that joined a validation already in flight in this process."""
        return self._flights.waits

    def key(self, token: str) -> str:
        """The cache key of the principal of ``token``."""
        return cache_key(self._ns, "principal", token)

    def cached_nowait(self, token: str) -> Principal | None:
        """The in-process tier alone: a hit costs a hash and a dict lookup, no ``await``.

        Only hits are counted here: a miss goes on to :meth:`resolve`, which counts the lookup.
        """
        principal = self._local.get(self.key(token))
        if principal is not None:
            self._local_lookups.hit.inc()
            if self._tracer is not None:
                self._tracer.start_span(
                    tracing.SPAN_LOCAL_HIT, attributes={tracing.TIER: "local"}
                ).end()
        return principal

    async def resolve(self, token: str) -> Principal:
        """The principal of a valid, unexpired, not-logged-out token, or :class:`Unauthorized`."""
        if self._tracer is None:
            return (await self._resolve(token))[0]
        with self._tracer.start_as_current_span(tracing.SPAN_RESOLVE) as span:
            principal, tier = await self._resolve(token)
            span.set_attribute(tracing.TIER, tier)
            return principal

    async def _resolve(self, token: str) -> tuple[Principal, str]:
        """The principal and the tier that answered."""
        key = self.key(token)
        principal = self._local.get(key)
        if principal is not None:
            self._local_lookups.hit.inc()
            return principal, "local"
        self._local_lookups.miss.inc()
        kind = self._validator.classify(token)
        if kind == "malformed" or (kind == "opaque" and not self._settings.accept_opaque_tokens):
            raise Unauthorized("The access token is malformed.")
        principal = await self._from_shared_cache(key)
        if principal is not None:
            self._shared_lookups.hit.inc()
            return principal, "memcached"
        shared = self._shared_lookups
        (shared.error if last_operation_failed() else shared.miss).inc()
        tier = "single_flight" if key in self._flights else "validation"
        return await self._flights.run(key, lambda: self._validate(token, key, kind)), tier

    async def forget(self, revoked: RevocationEntry) -> None:
        """Apply a revocation this process recorded: deny it here at once, drop its entries.

        The shared entry is deleted too; should memcached miss the delete, the revocation list
        refuses the entry on every worker that reads it.
        """
        self._revocations.add(revoked)
        if revoked.token_hash is not None:
            await self._cache.delete(digest_key(self._ns, "principal", revoked.token_hash))
            # a validation's lock outlives it: the next request of this token need not wait
            await self._cache.delete(digest_key(self._ns, "lock", revoked.token_hash))

    async def remember(self, token: str, principal: Principal) -> None:
        """Cache a principal the gateway validated itself (login, refresh)."""
        await self._keep(self.key(token), principal, principal.expires_at - time.time())

    async def remember_profile(self, sub: str, profile: dict[str, Any]) -> None:
        """Keep a user's profile (``email``, ``name``) so ``/userinfo`` is not asked again."""
        if self._settings.profile_ttl_s:
            kept = {k: profile.get(k) for k in ("email", "name")}
            self._keep_profile_here(sub, kept, self._settings.profile_ttl_s)
            key = cache_key(self._ns, "profile", sub)
            sealed = self._sealer.seal(key, json.dumps(kept).encode())
            await self._cache.set(key, sealed, self._settings.profile_ttl_s)

    def _keep_profile_here(self, sub: str, profile: dict[str, Any] | None, ttl: float) -> None:
        if len(self._profiles_here) >= _MAX_LOCAL_PROFILES:
            now = time.monotonic()
            self._profiles_here = {s: p for s, p in self._profiles_here.items() if p[0] > now}
            if len(self._profiles_here) >= _MAX_LOCAL_PROFILES:
                self._profiles_here.clear()
        self._profiles_here[sub] = (time.monotonic() + ttl, profile)

    async def _from_shared_cache(self, key: str) -> Principal | None:
        sealed = await self._cache.get(key)
        if sealed is None:
            return None
        raw = self._sealer.open(key, sealed)
        if raw is None:
            return None
        try:
            principal = Principal.from_bytes(raw)
        except ValueError:
            return None
        remaining = principal.expires_at - time.time()
        if remaining <= 0:
            return None
        if self._revocations.denies(_digest(key), principal.sub, principal.issued_at):
            raise Unauthorized("The access token was revoked (logged out).")
        self._local.put(key, principal, remaining)
        return principal

    async def _validate(self, token: str, key: str, kind: str) -> Principal:
        with tracing.span(self._tracer, tracing.SPAN_VALIDATE, {"gateway.token.kind": kind}):
            return await self._validate_once(token, key, kind)

    async def _validate_once(self, token: str, key: str, kind: str) -> Principal:
        lock = CacheLock(self._cache, cache_key(self._ns, "lock", token), self._lock_ttl_s)
        if not await lock.acquire():
            # another worker is validating this token: wait for its answer in memcached
            self.metrics.validation_lock_waits.inc()
            principal = await self._wait_for_other(key)
            if principal is not None:
                return principal
        # Three memcached round trips per validation: the miss, this add and the set of the
        # answer. Not re-read after the add: a worker that stored its answer and let go in
        # between costs one validation more, which is rare and harmless. And not let go once
        # the answer is stored: the waiters read the answer, not the lock, which runs out.
        try:
            self.validations += 1
            self.metrics.token_validations.inc()
            if kind == "jwt":
                principal, ttl = await self._validate_jwt(token)
            else:
                principal, ttl = await self._validate_opaque(token)
            if await self._revoked(key, principal):
                raise Unauthorized("The access token was revoked (logged out).")
            if not await self._keep(key, principal, ttl):
                # nothing in memcached for the waiters to read (a token in its expiry leeway,
                # memcached failing): let go, or each would wait out the lock
                await lock.release()
            if self._revocations.denies(_digest(key), principal.sub, principal.issued_at):
                # a logout in this process landed while the validation was in flight
                self._local.discard(key)
                await self._cache.delete(key)
                raise Unauthorized("The access token was revoked (logged out).")
        except BaseException:
            await lock.release()  # the others may try at once rather than wait for its TTL
            raise
        return principal

    async def _wait_for_other(self, key: str) -> Principal | None:
        with tracing.span(self._tracer, tracing.SPAN_LOCK_WAIT):
            return await wait_for(lambda: self._from_shared_cache(key), self._settings.lock_wait_s)

    async def _revoked(self, key: str, principal: Principal) -> bool:
        """The database's word (one indexed read); this process's list while it is down."""
        digest = _digest(key)
        if self._revocations.denies(digest, principal.sub, principal.issued_at):
            return True
        if time.monotonic() < self._store_down_until and self._revocations.loaded:
            return False
        try:
            return await self._store.is_revoked(digest, principal.sub, principal.issued_at)
        except SessionStoreUnavailable:
            if not self._revocations.loaded:
                # this process has never read the revocations: it cannot tell a logged-out
                # token from a good one, so it says so (503) rather than guess
                raise
            # Cached tokens keep working while the database is down; a new one is checked
            # against the revocations this process has read (none can be added meanwhile).
            self._store_down_until = time.monotonic() + _STORE_RETRY_S
            return False

    def _purge(self, revoked: RevocationEntry) -> None:
        if revoked.token_hash is not None:
            self._local.discard(digest_key(self._ns, "principal", revoked.token_hash))
        elif revoked.sub is not None and revoked.issued_before is not None:
            sub, before = revoked.sub, revoked.issued_before
            self._local.discard_if(lambda p: p.sub == sub and (p.issued_at or 0) < before)

    async def _validate_jwt(self, token: str) -> tuple[Principal, float]:
        claims = await self._validator.verify_jwt(token)
        profile, complete = await self._profile(str(claims["sub"]), token)
        principal = self._validator.principal(claims, profile)
        ttl = principal.expires_at - time.time()
        return principal, ttl if complete else min(ttl, _PROFILE_RETRY_TTL_S)

    async def _validate_opaque(self, token: str) -> tuple[Principal, float]:
        rejected = cache_key(self._ns, "rejected", token)
        if await self._cache.get(rejected) is not None:
            raise Unauthorized("The access token is invalid.")
        try:
            info = await self._auth0.userinfo(token)
        except Unauthorized:
            # the same string sent again is refused here, not by another call to Auth0
            await self._cache.set(rejected, b"1", self._settings.opaque_cache_s)
            raise
        except GatewayError as exc:
            raise UpstreamUnavailable(OPAQUE_UNCHECKED) from exc
        ttl = float(self._settings.opaque_cache_s)
        principal = Principal(
            sub=str(info.get("sub", "")),
            email=info.get("email"),
            name=info.get("name"),
            expires_at=int(time.time() + ttl),
            # unknown: denied under any cut-off of its user (a block, a deletion)
            issued_at=None,
            opaque=True,
        )
        if not principal.sub:
            raise Unauthorized("The access token is invalid.")
        return principal, ttl

    async def _profile(self, sub: str, token: str) -> tuple[dict[str, Any] | None, bool]:
        """The user's profile and whether it is complete (False: ask again soon)."""
        if not self._settings.profile_ttl_s:
            return None, True
        # The profiles this process saw come first: with memcached down, every validation
        # would otherwise ask /userinfo again (Auth0 allows 5 calls a minute per user).
        here = self._profiles_here.get(sub)
        if here is not None and here[0] > time.monotonic():
            return here[1], here[1] is not None
        profile_key = cache_key(self._ns, "profile", sub)
        sealed = await self._cache.get(profile_key)
        raw = None if sealed is None else self._sealer.open(profile_key, sealed)
        if raw is not None:
            try:
                cached: dict[str, Any] = json.loads(raw)
                return cached, True
            except ValueError:
                pass
        # concurrent validations of one user's tokens share one /userinfo call
        return await self._profile_flights.run(sub, lambda: self._fetch_profile(sub, token))

    async def _fetch_profile(self, sub: str, token: str) -> tuple[dict[str, Any] | None, bool]:
        profile: dict[str, Any] | None
        try:
            profile = await self._auth0.userinfo(token)
        except GatewayError as exc:
            # the token itself is valid (checked locally); the profile can wait
            log.warning("userinfo unavailable for a profile (%s); serving without it", exc.code)
            profile = None
        if profile is None:
            self._keep_profile_here(sub, None, _PROFILE_RETRY_TTL_S)
            return None, False
        await self.remember_profile(sub, profile)
        return profile, True

    async def _keep(self, key: str, principal: Principal, ttl: float) -> bool:
        """Keep ``principal`` in both tiers; True when memcached has it (waiters can read it)."""
        if ttl <= 0:
            return False
        self._local.put(key, principal, ttl)
        return await self._cache.set(key, self._sealer.seal(key, principal.to_bytes()), ttl)


def _digest(key: str) -> str:
    """The token hash at the end of a cache key."""
    return key.rsplit(":", 1)[1]
