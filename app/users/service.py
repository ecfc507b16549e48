"""User management: sign-up, self-service and admin operations over the Management API.

Retry policies differ by audience: sign-up and self-service wait at most
``GATEWAY_USERS__INTERACTIVE_RETRY_WAIT_S`` on Auth0's rate limit before answering 429 with
``Retry-After``; admin routes wait up to ``GATEWAY_USERS__ADMIN_RETRY_WAIT_S``.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import replace

from app.auth.flow import AuthFlow
from app.auth.principal import Principal
from app.cache.rate_limit import FixedWindowLimiter
from app.clients.auth0 import Auth0AuthClient, TokenSet
from app.clients.management import (
    ADMIN,
    INTERACTIVE,
    Auth0User,
    ManagementClient,
    UserPage,
)
from app.clients.management_errors import ManagementConflict
from app.clients.token_validator import TokenValidator
from app.http.client_ip import normalise
from app.http.errors import BadRequest, Forbidden, GatewayError, InvalidCredentials, RateLimited
from app.services import Services
from app.users.schemas import (
    AccountDeletion,
    AdminPatch,
    PasswordChange,
    SelfPatch,
    SignupRequest,
)

log = logging.getLogger(__name__)

_HOUR_S = 3600


class UserService:
    """What the ``/users`` routes do."""

    def __init__(
        self,
        *,
        interactive: ManagementClient,
        admin: ManagementClient,
        auth0: Auth0AuthClient,
        validator: TokenValidator,
        sessions: AuthFlow,
        signup_limiter: FixedWindowLimiter,
        connection: str,
    ) -> None:
        """``interactive`` and ``admin``: one Management client under two retry policies."""
        self._interactive = interactive
        self._admin = admin
        self._auth0 = auth0
        self._validator = validator
        self._sessions = sessions
        self._signup_limiter = signup_limiter
        self._connection = connection

    @classmethod
    def from_services(cls, services: Services) -> UserService:
        """The service over the app's long-lived parts (cheap: builds no connection)."""
        settings = services.settings
        users = settings.users
        return cls(
            interactive=services.management.with_retry(
                replace(INTERACTIVE, max_wait_s=users.interactive_retry_wait_s)
            ),
            admin=services.management.with_retry(
                replace(ADMIN, max_wait_s=users.admin_retry_wait_s)
            ),
            auth0=services.auth0,
            validator=services.validator,
            sessions=services.flow,
            signup_limiter=FixedWindowLimiter(
                services.cache,
                settings.cache_namespace,
                "signup",
                limit=users.signup_per_ip_per_hour,
                window_s=_HOUR_S,
            ),
            connection=settings.auth0.connection,
        )

    # -- sign-up and self-service -------------------------------------------------------

    async def sign_up(self, request: SignupRequest, *, client_ip: str | None) -> Auth0User:
        """Create an account in the configured connection, at most N per client IP per hour."""
        verdict = await self._signup_limiter.hit(_limit_key(client_ip))
        if not verdict.allowed:
            raise RateLimited(
                "Too many sign-ups from this address; try again later.",
                retry_after=verdict.retry_after_s,
            )
        body = {
            "connection": self._connection,
            "email": request.email,
            "password": request.password,
            "name": request.name,
        }
        try:
            return await self._interactive.create_user(body, sensitive=(request.password,))
        except ManagementConflict as exc:
            raise ManagementConflict(
                "An account with this email already exists.", code="user_exists"
            ) from exc

    async def get_self(self, sub: str) -> Auth0User:
        """The caller's own account."""
        return await self._interactive.get_user(sub)

    async def update_self(self, sub: str, patch: SelfPatch) -> Auth0User:
        """Change the caller's name, nickname, picture or ``user_metadata``."""
        return await self._interactive.update_user(sub, patch.changes())

    async def change_password(
        self,
        principal: Principal,
        access_token: str,
        change: PasswordChange,
        *,
        client_ip: str | None,
    ) -> int:
        """Check the current password by a login, set the new one, end the other sessions.

        Returns how many other sessions ended. The caller's own session continues.
        """
        user = await self._interactive.get_user(principal.sub)
        if not user.email:
            raise BadRequest("This account has no email to log in with.", code="unsupported")
        await self._check_password(principal.sub, user.email, change.current_password, client_ip)
        await self._interactive.update_user(
            principal.sub,
            {"password": change.new_password, "connection": self._connection},
            sensitive=(change.new_password, change.current_password),
        )
        return await self._sessions.end_user_sessions(
            principal.sub, keep=access_token, reason="password_change"
        )

    async def delete_self(
        self, principal: Principal, deletion: AccountDeletion, *, client_ip: str | None
    ) -> None:
        """Check the current password by a login, delete the account, end all its sessions."""
        sub = principal.sub
        user = await self._interactive.get_user(sub)
        if not user.email:
            raise BadRequest("This account has no email to log in with.", code="unsupported")
        await self._check_password(sub, user.email, deletion.current_password, client_ip)
        # the gateway's record first: should Auth0 fail, a retry still finds the user there
        await self._sessions.end_user_sessions(sub, cutoff=True, reason="user_deleted")
        await self._interactive.delete_user(sub)

    # -- admin ---------------------------------------------------------------------------

    async def search(self, q: str | None, page: int, per_page: int) -> UserPage:
        """Users matching the Lucene query ``q`` (all when None), one page."""
        return await self._admin.list_users(q=q, page=page, per_page=per_page)

    async def get(self, user_id: str) -> Auth0User:
        """One user."""
        return await self._admin.get_user(user_id)

    async def update(self, user_id: str, patch: AdminPatch) -> Auth0User:
        """Change a user; blocking also ends the user's sessions here (first, so a database
        that cannot record it leaves the user unblocked at Auth0 too, and a retry does both)."""
        if patch.blocked:
            await self._sessions.end_user_sessions(user_id, cutoff=True, reason="user_blocked")
        return await self._admin.update_user(user_id, patch.changes())

    async def delete(self, user_id: str) -> None:
        """End the user's sessions here, then delete the user at Auth0."""
        await self._sessions.end_user_sessions(user_id, cutoff=True, reason="user_deleted")
        await self._admin.delete_user(user_id)

    # -- plumbing ------------------------------------------------------------------------

    async def _check_password(
        self, sub: str, email: str, password: str, client_ip: str | None
    ) -> None:
        try:
            tokens = await self._auth0.password_login(email, password, forwarded_for=client_ip)
        except InvalidCredentials:
            # 403, not 401: the caller's token is fine, the password they typed is not
            raise Forbidden(
                "The current password is wrong.", code="invalid_current_password"
            ) from None
        try:
            claims = await self._validator.verify_jwt(tokens.access_token)
        finally:
            await self._discard(tokens)
        if claims.get("sub") != sub:
            raise Forbidden("The current password is wrong.", code="invalid_current_password")

    async def _discard(self, tokens: TokenSet) -> None:
        """Revoke the refresh token of the checking login: nobody will ever use it."""
        if tokens.refresh_token is None:
            return
        try:
            await self._auth0.revoke(tokens.refresh_token.get_secret_value())
        except GatewayError as exc:
            log.warning("could not revoke the password check's refresh token (%s)", exc.code)


def _limit_key(client_ip: str | None) -> str:
    """IPv4 addresses count one by one; IPv6 per /64, the block one client usually holds."""
    if client_ip is None:
        return "unknown"
    try:
        address = normalise(ipaddress.ip_address(client_ip))
    except ValueError:
        return client_ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
