"""``/auth``: login, refresh, logout and the caller's own principal."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.auth.flow import TokenResponse
from app.auth.principal import Principal
from app.clients.auth0_errors import AUTH0_BRUTE_FORCE, AUTH0_SUSPICIOUS_IP, MSG_LOGIN_RATE_LIMITED
from app.deps.security import BearerToken, CurrentPrincipal, ServicesDep
from app.http.body_limit import BodyLimitRoute, BodyReader
from app.http.client_ip import client_ip
from app.http.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    InvalidCredentials,
    MalformedJson,
    RateLimited,
    SessionStoreUnavailable,
    UnsupportedMediaType,
    UpstreamMisconfigured,
    UpstreamUnavailable,
    ValidationFailed,
)
from app.http.openapi import REFRESH_ERRORS, component_ref
from app.http.responses import error_responses

router = APIRouter(prefix="/auth", tags=["auth"], route_class=BodyLimitRoute)

_MAX_LOGIN_BODY = 16 * 1024
_JSON_OR_FORM = "Send the credentials as application/json (or as a form, as the docs page does)."


class LoginRequest(BaseModel):
    """A username (the email) and a password."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    username: str = Field(min_length=1, max_length=320, examples=["viewer@venues.local"])
    password: str = Field(min_length=1, max_length=1024, examples=["Viewer-Passw0rd!"])


class PrincipalOut(BaseModel):
    """The caller as the gateway sees it."""

    sub: str = Field(examples=["auth0|demo-viewer"])
    email: str | None = Field(default=None, examples=["viewer@venues.local"])
    name: str | None = Field(default=None, examples=["Demo Viewer"])
    permissions: list[str] = Field(examples=[["read:venues"]])
    scopes: list[str] = Field(examples=[["openid", "profile", "email", "offline_access"]])
    expires_at: int = Field(description="The access token's exp (Unix seconds).")

    @classmethod
    def of(cls, principal: Principal) -> PrincipalOut:
        """The caller's view of ``principal``."""
        return cls(
            sub=principal.sub,
            email=principal.email,
            name=principal.name,
            permissions=list(principal.permissions),
            scopes=list(principal.scopes),
            expires_at=principal.expires_at,
        )


async def _read_login(request: Request, body: bytes) -> LoginRequest:
    """Read the login body: JSON, or a form as the docs page's OAuth2 password flow posts."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    data: Any
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise MalformedJson() from exc
    elif content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        form = await request.form()
        data = {k: v for k, v in form.items() if isinstance(v, str)}
    else:
        raise UnsupportedMediaType(_JSON_OR_FORM)
    if not isinstance(data, dict):
        raise BadRequest("The body must be an object with username and password.")
    try:
        return LoginRequest.model_validate(data)
    except ValidationError as exc:
        # located as FastAPI locates a body's fields, for one shape of 422 on every route
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise ValidationFailed.from_errors(errors, "username and password are required.") from exc


login_request = BodyReader(_read_login, max_bytes=_MAX_LOGIN_BODY)
"""The login's credentials, from a body of at most 16 KiB (``/auth/login``, ``/auth/session``)."""

# JSON only in the document: one schema that generated clients handle. The docs page's
# "Authorize" posts a form to the same route (OAuth2's password flow), which keeps working.
_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": component_ref(LoginRequest)}},
    }
}
_AUTH0_REFUSALS = (
    Forbidden("This account is blocked.", code="user_blocked"),
    Forbidden(
        "This account requires multifactor authentication, which this login does not support.",
        code="mfa_required",
    ),
    Forbidden(
        "This login was blocked because the password appeared in a data breach; check "
        "your email for instructions.",
        code="password_leaked",
    ),
    Forbidden("Access denied by a rule of the tenant.", code="access_denied"),
    # Auth0's own texts, passed on (the gateway's fallback only when Auth0 sends none)
    RateLimited(AUTH0_BRUTE_FORCE, code="too_many_attempts"),
    RateLimited(AUTH0_SUSPICIOUS_IP, code="too_many_attempts"),
    RateLimited(MSG_LOGIN_RATE_LIMITED),
)
_UPSTREAM = (UpstreamMisconfigured, UpstreamUnavailable, SessionStoreUnavailable)

LOGIN_ERRORS: tuple[type[GatewayError] | GatewayError, ...] = (
    BadRequest("The body must be an object with username and password."),
    InvalidCredentials,
    UnsupportedMediaType(_JSON_OR_FORM),
    ValidationFailed.from_errors(
        [{"loc": ("body", "password"), "msg": "Field required", "type": "missing"}],
        "username and password are required.",
    ),
    *_AUTH0_REFUSALS,
    *_UPSTREAM,
)
"""What a login can answer besides 200 (``/auth/login``, and cookie mode's ``/auth/session``)."""


@router.post(
    "/login",
    openapi_extra=_LOGIN_BODY,
    responses=error_responses(*LOGIN_ERRORS),
)
async def login(
    request: Request,
    credentials: Annotated[LoginRequest, Depends(login_request)],
    services: ServicesDep,
    response: Response,
) -> TokenResponse:
    """Log in with a username and password; the refresh token stays on the server."""
    response.headers["Cache-Control"] = "no-store"
    ip = client_ip(request, services.settings.trusted_proxies)
    return await services.flow.login(credentials.username, credentials.password, client_ip=ip)


@router.post(
    "/refresh",
    responses=error_responses(*REFRESH_ERRORS),
)
async def refresh(token: BearerToken, services: ServicesDep, response: Response) -> TokenResponse:
    """Trade an access token (expired or not) for a new one."""
    response.headers["Cache-Control"] = "no-store"
    return await services.flow.refresh(token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(SessionStoreUnavailable),
)
async def logout(token: BearerToken, services: ServicesDep) -> None:
    """End the session: the refresh token is revoked and the access token stops working."""
    await services.flow.logout(token)


@router.get("/me", response_model=PrincipalOut)
async def get_me(principal: CurrentPrincipal, response: Response) -> Response:
    """The caller: user id, profile, permissions and scopes."""
    # The body is PrincipalOut's JSON, written directly: FastAPI would otherwise validate the
    # model it is handed and serialise it again, a fifth of the cost of a cached request
    # (docs/performance.md). The headers the dependencies set come along.
    answer = Response(principal_json(principal), media_type="application/json")
    answer.headers.raw.extend(response.headers.raw)
    return answer


#: The fields of :class:`PrincipalOut`, which :class:`Principal` has under the same names.
_PRINCIPAL_OUT_FIELDS: set[str] = set(PrincipalOut.model_fields)


def principal_json(principal: Principal) -> bytes:
    """``principal`` as :class:`PrincipalOut`'s JSON, byte for byte what pydantic writes."""
    return principal.model_dump_json(include=_PRINCIPAL_OUT_FIELDS).encode()
