"""Login, refresh and logout: the refresh token stays on the server, encrypted, at all times.

- login: password-realm grant; the session is recorded in the database (refresh token
  encrypted) with its first access token, and only ``{access_token, token_type, expires_in,
  scope}`` goes back.
- refresh: the (possibly expired) access token finds its session; one exchange per session
  however many tabs, workers or replicas ask at once (single flight in the process, a lease on
  the session row across processes, the answer kept for the grace); the rotated refresh token
  is stored before anything else can fail, and the session moves to the new access token.
- logout: with any access token of the session's chain, end the session, deny every token of
  the chain until it expires (in the database, then in every worker through its revocation
  list), revoke the refresh token at Auth0.
- ending every session of a user (password change, block, deletion): no limit on how many.

A database that does not answer makes these answer 503 with ``Retry-After`` and change nothing;
memcached going away costs them nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app.auth.resolver import PrincipalResolver
from app.auth.sessions import Ended, LoginRevoked, SessionStore, TokenSession
from app.cache import secret_digest
from app.cache.singleflight import SingleFlight
from app.clients.auth0 import Auth0AuthClient, TokenSet
from app.clients.token_validator import TokenValidator
from app.http.errors import (
    GatewayError,
    RefreshRejected,
    Unauthorized,
    UpstreamMisconfigured,
    UpstreamUnavailable,
)
from app.observability.metrics import Metrics, counted
from app.observability.tracing import SPAN_REFRESH, span

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

_REVOKE_CONCURRENCY = 8


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
        store: SessionStore,
        resolver: PrincipalResolver,
        grace_s: int,
        metrics: Metrics | None = None,
        upstream_timeout_s: float = 5.0,
        store_timeout_s: float = 5.0,
        refresh_after_expiry_s: int | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """``refresh_after_expiry_s``: how long after its ``exp`` a token may still be
        refreshed (None: any time while its session lives)."""
        self.metrics = metrics or Metrics()
        self._tracer = tracer
        self._auth0 = auth0
        self._validator = validator
        self._store = store
        self._resolver = resolver
        self._grace_s = grace_s
        self._refresh_after_expiry_s = refresh_after_expiry_s
        # a refresh makes one token exchange and at most one key-set fetch, and two writes; the
        # whole of it is cut off a second before the lease ends, so no lease ever lapses under
        # a refresh still running (another worker would then exchange the same refresh token)
        self._lease_s = 2 * upstream_timeout_s + 2 * store_timeout_s + 2
        self._refreshes: SingleFlight[TokenResponse] = SingleFlight(
            self.metrics.refresh_waits.inc, tracer=tracer
        )
        self._tasks: set[asyncio.Task[None]] = set()

    @counted("login")
    async def login(self, username: str, password: str, *, client_ip: str | None) -> TokenResponse:
        """Exchange a username and password for an access token; keep the refresh token."""
        try:
            return await self._login_once(username, password, client_ip)
        except LoginRevoked:
            # Auth0 issued byte-for-byte the token a logout (or a block) denied this very second:
            # its tokens carry no jti. The next second's login gets another token.
            await asyncio.sleep(1.02 - time.time() % 1)
        try:
            return await self._login_once(username, password, client_ip)
        except LoginRevoked:
            raise UpstreamUnavailable("Log in again in a second.", retry_after=1) from None

    async def _login_once(
        self, username: str, password: str, client_ip: str | None
    ) -> TokenResponse:
        tokens = await self._auth0.password_login(username, password, forwarded_for=client_ip)
        refresh = tokens.refresh_token
        if refresh is None:
            log.error(
                "Auth0 returned no refresh token: enable 'Allow Offline Access' on the API and "
                "the refresh_token grant on the client, and request offline_access"
            )
            raise UpstreamMisconfigured()
        try:
            claims = await self._validator.verify_jwt(tokens.access_token, issued=True)
            principal = self._validator.principal(claims, _profile_of(tokens))
            replaced = await self._store.start(
                sub=principal.sub,
                refresh_token=refresh,
                access_token=tokens.access_token,
                issued_at=_issued_at(claims),
                expires_at=principal.expires_at,
            )
        except LoginRevoked:
            await self._revoke_all([refresh], "a login whose token was just logged out")
            raise
        except GatewayError:
            # nothing here will ever use this refresh token: it must not stay live at Auth0
            await self._revoke_all([refresh], "a login that could not be completed")
            raise
        await self._revoke_all(replaced, "replacing a session")
        await self._remember(tokens, principal_claims=claims)
        return _answer(tokens, claims)

    @counted("refresh")
    async def refresh(self, access_token: str) -> TokenResponse:
        """A new access token for an old one (expired or not) whose session is live."""
        if self._validator.classify(access_token) != "jwt":
            raise Unauthorized("The access token is malformed.")
        # signature, issuer and audience still count; only expiry is forgiven, for a while
        claims = await self._validator.verify_jwt(access_token, allow_expired=True)
        window = self._refresh_after_expiry_s
        if window is not None and time.time() - int(claims["exp"]) > window:
            raise _log_in_again("The access token expired too long ago to refresh; log in again.")
        return await self._refreshes.run(
            secret_digest(access_token), lambda: self._refresh_once(access_token)
        )

    @counted("logout")
    async def logout(self, access_token: str) -> None:
        """End the session of ``access_token``'s chain, deny its tokens, revoke its refresh
        token."""
        claims = await self._validator.verify_jwt(access_token, allow_expired=True)
        ended = await self._store.end_chain(
            access_token, sub=str(claims["sub"]), expires_at=int(claims["exp"])
        )
        await self._apply(ended, "logout")

    async def end_user_sessions(
        self, sub: str, *, keep: str | None = None, cutoff: bool = False, reason: str
    ) -> int:
        """End every session of ``sub`` but ``keep``'s; how many ended.

        ``cutoff`` (block, deletion) also denies every token of the user issued until now.
        """
        ended = await self._store.end_user_sessions(sub, keep=keep, cutoff=cutoff, reason=reason)
        await self._apply(ended, reason)
        if ended.refresh_tokens:
            log.info("ended %d session(s) of a user (%s)", len(ended.refresh_tokens), reason)
        return len(ended.refresh_tokens)

    async def _refresh_once(self, old_token: str) -> TokenResponse:
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + self._lease_s + 1
        delay = 0.01
        while True:
            claimed = await self._store.claim_refresh(old_token, owner, self._lease_s)
            if claimed is not None:
                break
            answered = self._settled(await self._store.find(old_token))
            if answered is not None:
                return answered
            # another worker or replica is exchanging this session's refresh token: a second
            # exchange would be reuse and make Auth0 revoke the whole family; wait for its answer
            if time.monotonic() >= deadline:
                raise UpstreamUnavailable("A refresh of this session is still in progress.")
            self.metrics.refresh_lock_waits.inc()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        try:
            async with asyncio.timeout(self._lease_s - 1):
                return await self._exchange(claimed, owner, old_token)
        except TimeoutError:
            self._background(self._store.release_refresh(claimed.session_id, owner))
            raise UpstreamUnavailable("The refresh took too long; try again.") from None
        except BaseException:
            # the answer need not wait for the lease to be given back (it lapses by itself)
            self._background(self._store.release_refresh(claimed.session_id, owner))
            raise

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _settled(self, found: TokenSession | None) -> TokenResponse | None:
        """The answer a refresh already has, or None when this one must exchange.

        Raises 401 ``invalid_grant`` for no session, an ended one, or a token refreshed longer
        ago than the grace.
        """
        if found is None:
            raise _log_in_again("No session for this access token; log in again.")
        if found.ended:
            raise _log_in_again("The session has ended; log in again.")
        if found.refreshed_at is None:
            return None  # current, but another holds the lease
        # whole seconds on both sides, as the store keeps them: the grace is never cut short by
        # the fraction of a second that refreshed_at dropped
        if found.successor is not None and self._store.now() - found.refreshed_at <= self._grace_s:
            return TokenResponse.model_validate_json(found.successor)
        raise _log_in_again("This access token was already refreshed; use the newer one.")

    async def _exchange(self, found: TokenSession, owner: str, old_token: str) -> TokenResponse:
        with span(self._tracer, SPAN_REFRESH):
            return await self._exchange_once(found, owner, old_token)

    async def _exchange_once(
        self, found: TokenSession, owner: str, old_token: str
    ) -> TokenResponse:
        try:
            tokens = await self._auth0.refresh(found.refresh_token.get_secret_value())
        except RefreshRejected:
            await self._store.end_session(found.session_id, "refresh_rejected")
            raise
        refresh = tokens.refresh_token or found.refresh_token
        if tokens.refresh_token is not None and not await self._store.keep_rotated(
            found.session_id, owner, tokens.refresh_token
        ):
            raise _lease_lost()
        try:
            claims = await self._validator.verify_jwt(tokens.access_token, issued=True)
        except Unauthorized as exc:
            # Auth0 has just issued this token: not verifying it is the gateway's trouble (its
            # key set unreachable); the session, rotated token kept, can try again
            raise UpstreamUnavailable("The new token cannot be checked yet.") from exc
        answer = _answer(tokens, claims)
        outcome, replaced = await self._store.complete_refresh(
            session_id=found.session_id,
            owner=owner,
            old_token=old_token,
            new_token=tokens.access_token,
            issued_at=_issued_at(claims),
            expires_at=int(claims["exp"]),
            answer=answer.model_dump_json().encode(),
        )
        if outcome == "lost":
            raise _lease_lost()
        if outcome == "ended":
            # a logout (or a password change, a block) ended the session during the exchange:
            # what the exchange minted must die with it
            await self._revoke_all([refresh], "a refresh that lost to a logout")
            await self._store.deny(
                tokens.access_token,
                sub=found.sub,
                expires_at=int(claims["exp"]),
                reason="logout",
            )
            raise _log_in_again("The session ended during the refresh; log in again.")
        await self._revoke_all(replaced, "replacing a session")
        await self._remember(tokens, principal_claims=claims)
        return answer

    async def _remember(self, tokens: TokenSet, *, principal_claims: dict[str, Any]) -> None:
        profile = _profile_of(tokens)
        principal = self._validator.principal(principal_claims, profile)
        if profile is not None:
            await self._resolver.remember_profile(principal.sub, profile)
        await self._resolver.remember(tokens.access_token, principal)

    async def _apply(self, ended: Ended, why: str) -> None:
        # at once: with memcached hanging, one by one would cost a timeout per token
        await asyncio.gather(*(self._resolver.forget(revoked) for revoked in ended.revocations))
        await self._revoke_all(ended.refresh_tokens, why)

    async def close(self) -> None:
        """Wait for the lease releases still running (the app is stopping)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _revoke_all(self, refresh_tokens: list[SecretStr], why: str) -> None:
        if not refresh_tokens:
            return
        limit = asyncio.Semaphore(_REVOKE_CONCURRENCY)

        async def revoke(token: SecretStr) -> None:
            async with limit:
                await _revoke_quietly(self._auth0, token.get_secret_value(), why)

        await asyncio.gather(*(revoke(token) for token in refresh_tokens))


def _answer(tokens: TokenSet, claims: dict[str, Any]) -> TokenResponse:
    scope = tokens.scope
    if not scope:
        raw = claims.get("scope")
        scope = raw if isinstance(raw, str) else ""
    return TokenResponse(
        access_token=tokens.access_token,
        token_type=tokens.token_type or "Bearer",
        expires_in=tokens.expires_in,
        scope=scope,
    )


def _issued_at(claims: dict[str, Any]) -> int:
    iat = claims.get("iat")
    return int(iat) if isinstance(iat, int | float) else int(time.time())


def _lease_lost() -> UpstreamUnavailable:
    log.warning("a refresh outlived its lease; another worker may be refreshing that session")
    return UpstreamUnavailable("The refresh could not be completed; try again.")


def _log_in_again(description: str) -> Unauthorized:
    return Unauthorized(description, code="invalid_grant")


async def _revoke_quietly(auth0: Auth0AuthClient, refresh_token: str, why: str) -> None:
    try:
        await auth0.revoke(refresh_token)
    except GatewayError as exc:  # rate limited, already dead, unreachable: none stops a logout
        log.warning("refresh token revocation failed (%s) while %s", exc.code, why)


def _profile_of(tokens: TokenSet) -> dict[str, Any] | None:
    if tokens.id_token is None:
        return None
    # OIDC Core 3.1.3.7: an ID token received directly from the token endpoint over TLS may be
    # trusted without checking its signature; only its profile claims are read here.
    try:
        claims: dict[str, Any] = jwt.decode(
            tokens.id_token.get_secret_value(), options={"verify_signature": False}
        )
    except jwt.PyJWTError:
        return None
    return {"email": claims.get("email"), "name": claims.get("name")}
