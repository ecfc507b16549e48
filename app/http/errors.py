"""One exception tree for the gateway and the one JSON error shape it renders to.

Deep layers raise these, never ``HTTPException``; :func:`install_error_handlers` turns every
error, including validation errors and anything unexpected, into
``{"error": "<stable_code>", "error_description": "<for a human>"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("app.http.errors")


class GatewayError(Exception):
    """Base of every error the gateway answers with; subclasses fix status and code."""

    status_code: int = 500
    code: str = "server_error"
    description: str = "The gateway failed to handle the request."

    def __init__(
        self,
        description: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.description = description or type(self).description
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        self.details = list(details) if details is not None else None
        super().__init__(self.description)

    def body(self) -> dict[str, Any]:
        """The JSON body of the one error shape."""
        payload: dict[str, Any] = {"error": self.code, "error_description": self.description}
        if self.details is not None:
            payload["details"] = self.details
        return payload


class BadRequest(GatewayError):
    """The request is malformed (400)."""

    status_code = 400
    code = "invalid_request"
    description = "The request is malformed."


class MalformedJson(BadRequest):
    """The body is declared as JSON but does not parse (400)."""

    description = "The body is not valid JSON."


class RequestTooLarge(GatewayError):
    """The body is over the route's size limit (413)."""

    status_code = 413
    code = "request_too_large"
    description = "The request body is too large."


class UnsupportedMediaType(GatewayError):
    """The body's ``Content-Type`` is not one the route reads (415)."""

    status_code = 415
    code = "unsupported_media_type"
    description = "Send the body as application/json."


class ValidationFailed(GatewayError):
    """Fields are missing or invalid (422); ``details`` names each one."""

    status_code = 422
    code = "invalid_request"
    description = "The request body or parameters are invalid."

    @classmethod
    def from_errors(
        cls, errors: Sequence[Mapping[str, Any]], description: str | None = None
    ) -> ValidationFailed:
        """From pydantic's error list; only locations, messages and types (never the input)."""
        return cls(
            description,
            details=[
                {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
                for e in errors
            ],
        )


class Unauthorized(GatewayError):
    """No usable credentials (401); carries an RFC 6750 ``WWW-Authenticate`` challenge."""

    status_code = 401
    code = "invalid_token"
    description = "The access token is missing, invalid, expired or revoked."

    def __init__(
        self,
        description: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description, code=code, headers=headers)
        self.headers.setdefault("WWW-Authenticate", bearer_challenge(self.code, self.description))


class InvalidCredentials(Unauthorized):
    """The username or password is wrong (401)."""

    code = "invalid_grant"
    description = "Wrong username or password."

    def __init__(self, description: str | None = None) -> None:
        # RFC 6750 has no error code for a failed login: the challenge names none
        super().__init__(description, headers={"WWW-Authenticate": 'Bearer realm="venue-gateway"'})


class Forbidden(GatewayError):
    """Authenticated but not allowed (403)."""

    status_code = 403
    code = "access_denied"
    description = "You are not allowed to do this."


class InsufficientScope(Forbidden):
    """The token lacks a permission the route needs (403, RFC 6750 ``insufficient_scope``)."""

    code = "insufficient_scope"

    def __init__(self, required: Sequence[str]) -> None:
        scope = " ".join(required)
        super().__init__(
            f"This route needs the permission(s): {scope}.",
            headers={
                "WWW-Authenticate": (
                    f'Bearer error="insufficient_scope", scope="{scope}", '
                    f'error_description="The access token lacks a required permission"'
                )
            },
        )


class NotFound(GatewayError):
    """No such resource (404)."""

    status_code = 404
    code = "not_found"
    description = "No such resource."


class Conflict(GatewayError):
    """The resource already exists or changed (409)."""

    status_code = 409
    code = "conflict"
    description = "The request conflicts with the current state of the resource."


class RateLimited(GatewayError):
    """Too many requests (429), with ``Retry-After``."""

    status_code = 429
    code = "too_many_requests"
    description = "Too many requests; try again later."

    def __init__(
        self, description: str | None = None, *, code: str | None = None, retry_after: int = 60
    ) -> None:
        super().__init__(
            description, code=code, headers={"Retry-After": str(max(1, int(retry_after)))}
        )


class UpstreamMisconfigured(GatewayError):
    """Auth0 refused the gateway itself (bad client secret, grant not enabled): 502."""

    status_code = 502
    code = "upstream_misconfigured"
    description = "The identity provider refused the gateway's configuration; operators are told."


class UpstreamUnavailable(GatewayError):
    """Auth0 timed out, failed or could not be reached (503), with ``Retry-After``."""

    status_code = 503
    code = "upstream_unavailable"
    description = "The identity provider is unavailable; try again shortly."

    def __init__(self, description: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(description, headers={"Retry-After": str(max(1, int(retry_after)))})


class DatabaseUnavailable(GatewayError):
    """The database did not answer in time, or refused (503): try again shortly."""

    status_code = 503
    code = "database_unavailable"
    description = "The database is unavailable; try again shortly."


class SessionStoreUnavailable(GatewayError):
    """The database that records sessions and revocations did not answer (503).

    Logins, refreshes and logouts are refused whole rather than half done; tokens already
    cached keep working.
    """

    status_code = 503
    code = "session_store_unavailable"
    description = "The gateway's session store is unavailable; try again shortly."

    def __init__(self, description: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(description, headers={"Retry-After": str(max(1, int(retry_after)))})


def bearer_challenge(error: str, description: str) -> str:
    """An RFC 6750 challenge; the description never carries a token."""
    safe = description.replace('"', "'")
    return f'Bearer realm="venue-gateway", error="{error}", error_description="{safe}"'


_STATUS_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "invalid_token",
    403: "access_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    428: "precondition_required",
    429: "too_many_requests",
}


def error_response(error: GatewayError) -> JSONResponse:
    """Render an error in the one shape."""
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


async def _on_gateway_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)  # noqa: S101 - registered for this class only
    if exc.status_code >= 500:
        log.warning("answered %s %s", exc.status_code, exc.code)
    return error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return error_response(MalformedJson())
    return error_response(ValidationFailed.from_errors(exc.errors()))


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    error = GatewayError(str(exc.detail), code=_STATUS_CODES.get(exc.status_code, "http_error"))
    error.status_code = exc.status_code
    error.headers = dict(exc.headers or {})
    return error_response(error)


async def _on_client_disconnect(_: Request, exc: Exception) -> Response:
    # Nobody is left to answer: not an error of the gateway's. 499 (nginx's "client closed
    # request") is what the access line records; nothing reaches the client.
    log.info("the client disconnected before its request was read")
    return Response(status_code=499)


async def _on_database_error(_: Request, exc: Exception) -> JSONResponse:
    # an outage, not a bug: one line, no traceback
    log.warning("database unavailable: %s", type(exc).__name__)
    return error_response(DatabaseUnavailable())


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error: %s", type(exc).__name__)
    return error_response(GatewayError())


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer in the one JSON shape."""
    app.add_exception_handler(GatewayError, _on_gateway_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ClientDisconnect, _on_client_disconnect)
    # SQLAlchemy's errors (a pool that stays empty, a connection lost, the driver's, wrapped)
    app.add_exception_handler(SQLAlchemyError, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)


class RefreshRejected(Unauthorized):
    """Auth0 refused the stored refresh token (revoked, expired or reused): the session is over.

    401 with the OAuth code ``invalid_grant`` (as for a missing session); the RFC 6750 challenge
    says ``invalid_token``, the registered value that fits, so clients know to log in again.
    """

    code = "invalid_grant"
    description = "The session has ended; log in again."

    def __init__(self, description: str | None = None) -> None:
        text = description or type(self).description
        super().__init__(
            text, headers={"WWW-Authenticate": bearer_challenge("invalid_token", text)}
        )
