"""Ending a user's gateway sessions: after a password change, an account deletion or a block.

For each access token in the user's :class:`~app.auth.session_index.UserSessionIndex`
(except the one to keep): its refresh token is revoked at Auth0, its session is deleted (so
``/auth/refresh`` answers 401), and the access token is denied until its ``exp`` in the shared
cache and in this process (so every route answers 401). Other worker processes may still serve
such a token from their in-process tier for at most ``GATEWAY_CACHE__LOCAL_TTL_S``, exactly as
after a logout.
"""

from __future__ import annotations

import logging

from app.auth.resolver import PrincipalResolver
from app.auth.session_index import UserSessionIndex
from app.auth.sessions import SessionStore
from app.clients.auth0 import Auth0AuthClient
from app.http.errors import GatewayError

log = logging.getLogger(__name__)


class UserSessions:
    """Ends a user's sessions found through the index."""

    def __init__(
        self,
        index: UserSessionIndex,
        sessions: SessionStore,
        resolver: PrincipalResolver,
        auth0: Auth0AuthClient,
    ) -> None:
        """End sessions of ``sessions``, deny tokens through ``resolver``, revoke at ``auth0``."""
        self._index = index
        self._sessions = sessions
        self._resolver = resolver
        self._auth0 = auth0

    async def end(self, sub: str, *, keep: str | None = None) -> int:
        """End every session of ``sub`` but the one of access token ``keep``; how many ended."""
        ended = 0
        for entry in await self._index.entries(sub):
            token = entry.access_token
            if token == keep:
                continue
            session = await self._sessions.load(token)
            if session is not None:
                ended += 1
                try:
                    await self._auth0.revoke(session.refresh_token.get_secret_value())
                except GatewayError as exc:
                    # the only copy is deleted below, so the refresh token is unreachable anyway
                    log.warning("refresh token revocation failed (%s); session deleted", exc.code)
            await self._sessions.delete(token)
            await self._sessions.mark_revoked(token, entry.expires_at)
            await self._resolver.forget(token, until=entry.expires_at)
        await self._index.keep_only(sub, keep)
        if ended:
            log.info("ended %d other session(s) of a user", ended)
        return ended
