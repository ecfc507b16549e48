"""Login, refresh and logout: the refresh token stays on the server, encrypted, at all times.

- login: password-realm grant; the refresh token is stored under the access token's hash and
  only ``{access_token, token_type, expires_in, scope}`` goes back.
- refresh: the (possibly expired) access token finds the stored refresh token; one exchange per
  token however many tabs ask at once (single flight in the process, a memcached lock and a
  grace record across processes); the rotated refresh token replaces the old one under the new
  access token's key, and the old key stops working for refresh once the grace runs out.
- logout: revoke at Auth0, delete the session, deny the access token until its ``exp``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

import jwt
from pydantic import BaseModel, ConfigDict, Field

from app.auth.resolver import PrincipalResolver
from app.auth.sessions import Session, SessionStore
from app.cache import Cache, cache_key
from app.cache.lock import CacheLock, wait_for
from app.cache.singleflight import SingleFlight
from app.clients.auth0 import Auth0AuthClient, TokenSet
from app.clients.token_validator import TokenValidator
from app.http.errors import (
    CacheUnavailable,
    GatewayError,
    RefreshRejected,
    Unauthorized,
    UpstreamMisconfigured,
    UpstreamUnavailable,
)
from app.observability.metrics import Metrics, counted

if TYPE_CHECKING:
    from app.auth.session_index import UserSessionIndex

log = logging.getLogger("app.auth.flow")


class TokenResponse(BaseModel):
    """What a client gets from login and refresh: never a refresh token, never an id token."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    access_token: str = Field(description="A short-lived bearer token for the API.")
    token_type: str = Field(default="Bearer", examples=["Bearer"])
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[3600])
    scope: str = Field(default="", examples=["openid profile email offline_access read:venues"])


class AuthFlow:
    """Orchestrates the Auth0 client, the session store and the principal cache."""

    def __init__(
        self,
        *,
        auth0: Auth0AuthClient,
        validator: TokenValidator,
        sessions: SessionStore,
        resolver: PrincipalResolver,
        cache: Cache,
        namespace: str,
        session_lifetime_s: int,
        grace_s: int,
        session_index: UserSessionIndex | None = None,
        metrics: Metrics | None = None,
        upstream_timeout_s: float = 5.0,
    ) -> None:
        self.metrics = metrics or Metrics()
        self._auth0 = auth0
        self._validator = validator
        self._sessions = sessions
        self._resolver = resolver
        self._cache = cache
        self._ns = namespace
        self._lifetime_s = session_lifetime_s
        self._grace_s = grace_s
        # a refresh makes one token exchange and at most one JWKS fetch, each within the timeout
        self._lock_ttl_s = 2 * upstream_timeout_s + 1
        self._refreshes: SingleFlight[TokenResponse] = SingleFlight(self.metrics.refresh_waits.inc)
        # one session start at a time per access token (identical tokens: see _start_session)
        self._session_starts: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        # per user, the sessions' access tokens, so a password change can end the others
        self._session_index = session_index

    @counted("login")
    async def login(self, username: str, password: str, *, client_ip: str | None) -> TokenResponse:
        """Exchange a username and password for an access token; keep the refresh token."""
        tokens = await self._auth0.password_login(username, password, forwarded_for=client_ip)
        return await self._start_session(tokens, created_at=int(time.time()), expires_at=None)

    @counted("refresh")
    async def refresh(self, access_token: str) -> TokenResponse:
        """A new access token for an old one (expired or not) that has a session here."""
        if self._validator.classify(access_token) != "jwt":
            raise Unauthorized("The access token is malformed.")
        # signature, issuer and audience still count; only expiry is forgiven
        await self._validator.verify_jwt(access_token, allow_expired=True)
        key = cache_key(self._ns, "refresh", access_token)
        return await self._refreshes.run(key, lambda: self._refresh_once(access_token))

    @counted("logout")
    async def logout(self, access_token: str) -> None:
        """End the session: revoke the refresh token, forget it, deny the access token."""
        claims = await self._validator.verify_jwt(access_token, allow_expired=True)
        until = int(claims.get("exp", time.time()))
        # the denial first: other workers only learn of the logout through it, so a logout
        # that cannot be recorded is refused (session kept) rather than half done
        if not await self._sessions.mark_revoked(access_token, until):
            raise CacheUnavailable("The logout could not be recorded; try again shortly.")
        session = await self._sessions.load(access_token)
        if session is not None:
            # the only copy is deleted below, so a failed revocation leaves it unreachable
            await _revoke_quietly(self._auth0, session.refresh_token.get_secret_value(), "logout")
        await self._sessions.delete(access_token)
        await self._resolver.forget(access_token, until=until)

    async def _refresh_once(self, old_token: str) -> TokenResponse:
        answered = await self._grace_answer(old_token)
        if answered is not None:
            return answered
        lock = CacheLock(
            self._cache, cache_key(self._ns, "refresh-lock", old_token), self._lock_ttl_s
        )
        if not await lock.acquire():
            self.metrics.refresh_lock_waits.inc()
            # as long as the lock lives the other worker may still be exchanging: a second
            # exchange of the same refresh token would be reuse and revoke the whole family
            answered = await wait_for(
                lambda: self._grace_answer(old_token), self._lock_ttl_s, max_delay_s=0.2
            )
            if answered is not None:
                return answered
        try:
            session = await self._sessions.load(old_token)
            if session is None:
                raise Unauthorized(
                    "No session for this access token; log in again.", code="invalid_grant"
                )
            try:
                tokens = await self._auth0.refresh(session.refresh_token.get_secret_value())
            except RefreshRejected:
                await self._sessions.delete(old_token)
                raise
            if tokens.refresh_token is not None:
                # the used refresh token is dead at Auth0 now: keep its successor under the old
                # key before anything else can fail, or the next try would be reuse
                session = session.model_copy(update={"refresh_token": tokens.refresh_token})
                await self._sessions.save(old_token, session)
            try:
                response = await self._start_session(
                    tokens,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    previous=session,
                    replaces=old_token,
                )
            except Unauthorized as exc:
                # Auth0 has just issued this token: not verifying it is the gateway's trouble
                # (its key set unreachable), and the session, kept above, can try again
                raise UpstreamUnavailable("The new token cannot be checked yet.") from exc
            if response.access_token != old_token:
                # without a jti a refresh within the same second can return the same token
                await self._sessions.put_grace(
                    old_token, response.model_dump_json().encode(), self._grace_s
                )
                await self._sessions.delete(old_token)
            return response
        finally:
            await lock.release()

    async def _grace_answer(self, old_token: str) -> TokenResponse | None:
        raw = await self._sessions.get_grace(old_token)
        if raw is None:
            return None
        return TokenResponse.model_validate_json(raw)

    async def _retire_overwritten_session(self, access_token: str, refresh_token: str) -> None:
        # Auth0 access tokens carry no jti: two logins of one user in the same second can get
        # byte-identical tokens and so the same session key. The older refresh token would then
        # stay live at Auth0 with no copy left here to revoke it.
        existing = await self._sessions.load(access_token)
        if existing is not None and existing.refresh_token.get_secret_value() != refresh_token:
            await _revoke_quietly(
                self._auth0, existing.refresh_token.get_secret_value(), "replacing a session"
            )

    async def _start_session(
        self,
        tokens: TokenSet,
        *,
        created_at: int,
        expires_at: int | None,
        previous: Session | None = None,
        replaces: str | None = None,
    ) -> TokenResponse:
        refresh = tokens.refresh_token or (previous.refresh_token if previous else None)
        if refresh is None:
            log.error(
                "Auth0 returned no refresh token: enable 'Allow Offline Access' on the API and "
                "the refresh_token grant on the client, and request offline_access"
            )
            raise UpstreamMisconfigured()
        claims = await self._validator.verify_jwt(tokens.access_token)
        profile = (
            _profile_from_id_token(tokens.id_token.get_secret_value()) if tokens.id_token else None
        )
        principal = self._validator.principal_from_claims(claims, profile)
        now = int(time.time())
        session = Session(
            refresh_token=refresh,
            sub=principal.sub,
            created_at=created_at,
            expires_at=expires_at if expires_at is not None else now + self._lifetime_s,
        )
        key = cache_key(self._ns, "session-start", tokens.access_token)
        lock = self._session_starts.setdefault(key, asyncio.Lock())
        async with lock:
            await self._retire_overwritten_session(tokens.access_token, refresh.get_secret_value())
            await self._sessions.save(tokens.access_token, session)
        if profile is not None:
            await self._resolver.remember_profile(principal.sub, profile)
        await self._resolver.remember(tokens.access_token, principal)
        if self._session_index is not None:
            await self._session_index.record(
                principal.sub,
                tokens.access_token,
                expires_at=principal.expires_at,
                session_until=expires_at if expires_at is not None else now + self._lifetime_s,
                replaces=replaces,
            )
        return TokenResponse(
            access_token=tokens.access_token,
            token_type=tokens.token_type or "Bearer",
            expires_in=tokens.expires_in,
            scope=tokens.scope or " ".join(principal.scopes),
        )


async def _revoke_quietly(auth0: Auth0AuthClient, refresh_token: str, why: str) -> None:
    try:
        await auth0.revoke(refresh_token)
    except GatewayError as exc:  # rate limited, already dead, unreachable: none stops a logout
        log.warning("refresh token revocation failed (%s) while %s", exc.code, why)


def _profile_from_id_token(id_token: str) -> dict[str, Any] | None:
    # OIDC Core 3.1.3.7: an ID token received directly from the token endpoint over TLS may be
    # trusted without checking its signature; only its profile claims are read here.
    try:
        claims: dict[str, Any] = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return {"email": claims.get("email"), "name": claims.get("name")}
