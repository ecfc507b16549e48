"""Management API errors: Auth0's error body, and the gateway errors it becomes.

Auth0 answers Management errors as ``{"statusCode", "error", "message", "errorCode"}``, unlike
the Authentication API's ``{"error", "error_description"}``; a proxy or an injected fault may
still answer in the latter shape, so both are read. Each answer becomes one error of the
gateway's tree that also carries the parsed body (:attr:`ManagementFailure.upstream`), so
routes render it and provisioning can still tell *why* Auth0 said no.

- 404 -> :class:`ManagementNotFound` (404); 409 -> :class:`ManagementConflict` (409)
- 400 -> :class:`ManagementBadRequest` (400): a refused password keeps Auth0's reason
  (``PasswordStrengthError: Password is too weak``) under the code ``weak_password``
- 429 -> :class:`ManagementRateLimited` (429 with ``Retry-After``)
- 401/403 -> :class:`ManagementRefused` (502): Auth0 refused the gateway's own token or grant;
  never the caller's fault, and logged loudly with the fix
- 5xx, garbage, transport failures -> :class:`ManagementUnavailable` (503)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from app.http.errors import (
    BadRequest,
    Conflict,
    GatewayError,
    NotFound,
    RateLimited,
    UpstreamMisconfigured,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

_MAX_MESSAGE = 300
#: Auth0's password-policy refusals (strength, history, dictionary, personal data).
_PASSWORD_ERRORS = (
    "PasswordStrengthError",
    "PasswordHistoryError",
    "PasswordDictionaryError",
    "PasswordNoUserInfoError",
)


@dataclass(frozen=True)
class ManagementErrorBody:
    """The parts of a Management error answer the gateway reads."""

    status: int
    error: str
    message: str
    error_code: str | None = None

    @classmethod
    def from_response(
        cls, response: httpx.Response, sensitive: Iterable[str] = ()
    ) -> ManagementErrorBody:
        """Parse either error shape; a missing or non-JSON body keeps only the status."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return cls(response.status_code, response.reason_phrase or "", "")
        status = body.get("statusCode")
        error = body.get("error")
        message = body.get("message", body.get("error_description", ""))
        code = body.get("errorCode")
        if code is None and "error_description" in body:
            code = error  # the Authentication API shape: error is the code
        return cls(
            status=status if isinstance(status, int) else response.status_code,
            error=error if isinstance(error, str) else "",
            message=scrub(message if isinstance(message, str) else "", sensitive),
            error_code=code if isinstance(code, str) else None,
        )

    def describe(self) -> str:
        """``403 insufficient_scope: Insufficient scope, expected any of: read:users``."""
        code = self.error_code or self.error or "error"
        return f"{self.status} {code}: {self.message or 'no message'}"


class ManagementFailure(GatewayError):
    """Base of every error that came from a Management API answer."""

    upstream: ManagementErrorBody | None = None


class ManagementNotFound(NotFound, ManagementFailure):
    """Auth0 has no such object (404)."""


class ManagementConflict(Conflict, ManagementFailure):
    """The object already exists (409)."""


class ManagementBadRequest(BadRequest, ManagementFailure):
    """Auth0 refused the payload (400), a password its policy refuses included."""


class ManagementRateLimited(RateLimited, ManagementFailure):
    """Auth0's Management API rate limit (429), after any bounded waiting."""


class ManagementRefused(UpstreamMisconfigured, ManagementFailure):
    """Auth0 refused the gateway's own token or grant (401/403): 502, an operator's problem."""


class ManagementUnavailable(UpstreamUnavailable, ManagementFailure):
    """The Management API failed, timed out or answered garbage (503)."""


def scrub(text: str, sensitive: Iterable[str]) -> str:
    """``text`` bounded, printable, with every sensitive value (a password) replaced."""
    for secret in sensitive:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text[:_MAX_MESSAGE]


def is_password_refusal(body: ManagementErrorBody) -> bool:
    """True when Auth0 refused a password under the connection's policy."""
    return body.message.startswith(_PASSWORD_ERRORS) or (body.error_code or "").startswith(
        ("password_", "Password")
    )


def error_for(
    body: ManagementErrorBody, *, operation: str, retry_after_s: int
) -> ManagementFailure:
    """The gateway error for a Management error answer to ``operation`` (for logs)."""
    error: ManagementFailure
    status = body.status
    if status == 404:
        error = ManagementNotFound(body.message or None)
    elif status == 409:
        error = ManagementConflict(body.message or None)
    elif status == 400 and is_password_refusal(body):
        error = ManagementBadRequest(body.message, code="weak_password")
    elif status == 400:
        error = ManagementBadRequest(body.message or None)
    elif status == 429:
        error = ManagementRateLimited(
            "The identity provider's management API is busy; try again shortly.",
            retry_after=retry_after_s,
        )
    elif status in (401, 403):
        log.error(
            "AUTH0 MANAGEMENT API REFUSED THE GATEWAY on %s: %s. Likely fix: authorize the "
            "gateway's application for the Management API with the scope(s) named above "
            "(gateway provision / gateway doctor), and check GATEWAY_AUTH0__CLIENT_ID/SECRET",
            operation,
            body.describe(),
        )
        error = ManagementRefused()
    else:
        log.warning("Auth0 Management %s answered %s", operation, body.describe())
        error = ManagementUnavailable(retry_after=5)
    error.upstream = body
    return error
