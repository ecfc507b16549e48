"""The OpenAPI document: operation ids, metadata, and the answers layers below the routes give.

Routes declare the errors they raise (:func:`app.http.responses.error_responses`); some answers
come from layers a route does not see, so they are derived here and merged into what the route
declares (the codes of one status form one ``enum``):

- the bearer dependency: 401 (no, bad, expired or revoked token) and 503 (the tenant's keys or
  ``/userinfo`` unreachable while validating, or the revocations unreadable);
- the session cookie, which every route of the bearer dependency also takes: 401 for a session
  that is over, and what the refresh of its access token can answer (:data:`REFRESH_ERRORS`);
- :class:`~app.deps.security.RequireScopes`: 403 ``insufficient_scope`` naming the permissions,
  which are also listed in ``x-permissions`` and appended to the description;
- a body the route reads: 400 when declared JSON does not parse or nests too deep, 413 over
  the route's own limit (:class:`~app.http.body_limit.BodyLimitRoute`), 415 for a content type
  the route does not read; a route that reads no body gives none of these;
- 422 for invalid fields: FastAPI's ``HTTPValidationError`` is replaced by the one error shape,
  with the route's own answer as the example (:func:`invalid_fields`);
- ``If-Match`` is required in the document wherever its absence is a 428;
- every answer carries ``X-Request-ID``.

Operation ids are the route functions' names in camelCase (:func:`operation_id`): ``login``,
``listVenues``, ``updateVenue``; a route added later gets one the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel

from app.auth.browser import session_ended
from app.auth.resolver import OPAQUE_UNCHECKED
from app.clients.auth0_errors import MSG_EXPIRED, MSG_GATEWAY_RATE_LIMITED, MSG_INVALID
from app.clients.jwks import KEYS_UNAVAILABLE
from app.deps.security import RequireScopes, current_principal, oauth2_scheme
from app.http.body_limit import FORM_ADVICE, JSON_ADVICE, BodyLimitRoute, too_deep, too_large
from app.http.csrf import CSRF_REFUSALS, UNSAFE_METHODS
from app.http.errors import (
    Forbidden,
    GatewayError,
    InsufficientScope,
    MalformedJson,
    RateLimited,
    RefreshRejected,
    SessionStoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamMisconfigured,
    UpstreamUnavailable,
    ValidationFailed,
)
from app.http.responses import (
    ErrorExample,
    ValidationIssue,
    merge_answers,
)

_FASTAPI_422_REF = "#/components/schemas/HTTPValidationError"
_REQUEST_ID = {
    "description": "The request's id: the caller's own when it sent a sane one, else a new one.",
    "schema": {"type": "string", "maxLength": 128},
}

TAGS: list[dict[str, Any]] = [
    {"name": "auth", "description": "Log in with a username and password, refresh, log out."},
    {
        "name": "venues",
        "description": "The venue API: list, read, create, change (with If-Match) and delete.",
    },
    {
        "name": "users",
        "description": "Sign up, your own account, and user administration (Auth0 users).",
    },
    {
        "name": "tokens",
        "description": "Token introspection (RFC 7662) for internal services, with HTTP Basic.",
    },
    {"name": "operations", "description": "Liveness, readiness and metrics for operators."},
]
"""The tags of the document, in the order the docs page shows them."""

UNAUTHORIZED = [
    Unauthorized(MSG_EXPIRED),
    Unauthorized(MSG_INVALID),
    Unauthorized("The access token was revoked (logged out)."),
    Unauthorized(
        "Authentication required: send 'Authorization: Bearer <token>'.",
        code="invalid_request",
        headers={"WWW-Authenticate": 'Bearer realm="venue-gateway"'},
    ),
]
"""What the bearer check answers (:mod:`app.deps.security`): a few of its real 401s."""
KEYS_DOWN = UpstreamUnavailable(KEYS_UNAVAILABLE)
"""What any check of a token answers when the tenant's signing keys cannot be had."""
UNAVAILABLE: list[GatewayError] = [
    KEYS_DOWN,
    UpstreamUnavailable(OPAQUE_UNCHECKED),
    # a worker that never read the revocations cannot tell a logged-out token from a good one
    SessionStoreUnavailable(),
]
"""What the bearer check answers when the tenant's keys, ``/userinfo`` or the database that
holds the revocations cannot be reached."""
REFRESH_ERRORS: tuple[GatewayError, ...] = (
    RefreshRejected(),
    RefreshRejected("No session for this access token; log in again."),
    Forbidden("This account is blocked.", code="user_blocked"),
    RateLimited(MSG_GATEWAY_RATE_LIMITED),
    UpstreamMisconfigured(),
    UpstreamUnavailable(),
    SessionStoreUnavailable(),
)
"""What a refresh answers besides the check of the token (``/auth/refresh``, and the refresh
cookie mode makes of a session's access token before it expires)."""
COOKIE_ERRORS: tuple[GatewayError, ...] = (session_ended(), *REFRESH_ERRORS)
"""What the session cookie adds to the bearer check's answers (:mod:`app.auth.browser`)."""


_COMPONENTS: dict[str, type[BaseModel]] = {}


def component_ref(model: type[BaseModel]) -> dict[str, str]:
    """A ``$ref`` to ``model`` as a named schema component, for a hand-written ``openapi_extra``.

    FastAPI names only the models routes take or return; the document gains this one too.
    """
    _COMPONENTS[model.__name__] = model
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def operation_id(route: APIRoute) -> str:
    """``list_venues`` -> ``listVenues``: the route function's name in camelCase."""
    first, *rest = route.name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


METADATA: dict[str, Any] = {
    "generate_unique_id_function": operation_id,
    "summary": "The venue API behind Auth0's password login.",
    "license_info": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
    "contact": {"name": "venue-gateway maintainers", "email": "venue-gateway@example.com"},
    "servers": [{"url": "/", "description": "This gateway."}],
    "openapi_tags": TAGS,
}
"""``FastAPI(**METADATA)``: servers, license, contact and tags of the document."""


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def security_answers(dependant: Dependant) -> tuple[list[ErrorExample], list[str]]:
    """The error answers a route's security dependencies can give, and its permissions."""
    calls = list(_calls(dependant))
    permissions = sorted(
        {p for call in calls if isinstance(call, RequireScopes) for p in call.permissions}
    )
    answers: list[ErrorExample] = []
    if oauth2_scheme in calls or current_principal in calls:
        answers += [ErrorExample.of(error) for error in UNAUTHORIZED]
    if oauth2_scheme in calls:
        answers.append(ErrorExample.of(KEYS_DOWN))
    if current_principal in calls:
        answers += [ErrorExample.of(error) for error in [*UNAVAILABLE, *COOKIE_ERRORS]]
    if permissions:
        answers.append(ErrorExample.of(InsufficientScope(permissions)))
    return answers, permissions


_WIRE_VALUES = ("", "x", "x" * 5000)
"""Values a path, query or header parameter can carry, tried in turn for one it refuses."""


def invalid_fields(route: APIRoute) -> ErrorExample | None:
    """The route's own 422: its answer to an empty body object, or else to the first value of
    :data:`_WIRE_VALUES` that one of its parameters refuses, the first in order whose error
    names the parameter plainly (not a branch of a union). None when it validates nothing."""
    errors: list[Any] = []
    if route.body_field is not None:
        errors = route.body_field.validate({}, loc=("body",))[1]
    dependant = route.dependant
    fields = [*dependant.path_params, *dependant.query_params, *dependant.header_params]
    for field in fields:
        for value in _WIRE_VALUES:
            if errors or (isinstance(field.field_info, params.Path) and not value):
                continue  # found already, or an empty path segment (which no request has)
            found = request_params_to_args([field], {field.alias: value})[1]
            if all(len(error["loc"]) == 2 for error in found):
                errors = found
    if not errors:
        return None
    return ErrorExample.of(ValidationFailed.from_errors(errors))


def _body_answers(operation: dict[str, Any], route: APIRoute) -> list[ErrorExample]:
    content = operation.get("requestBody", {}).get("content", {})
    limit = route.body_limit if isinstance(route, BodyLimitRoute) else None
    if not content or limit is None:
        return []
    answers = [ErrorExample.of(too_large(limit))]
    json_body = any(media.endswith("json") for media in content)
    if json_body:
        answers += [ErrorExample.of(MalformedJson()), ErrorExample.of(too_deep())]
    # a route that documents its own 415 reads its body itself (login: JSON or a form)
    if "415" not in operation.get("responses", {}):
        advice = JSON_ADVICE if json_body else FORM_ADVICE
        answers.append(ErrorExample.of(UnsupportedMediaType(advice)))
    return answers


def _require_if_match(operation: dict[str, Any]) -> None:
    if "428" not in operation.get("responses", {}):
        return
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "header" and parameter["name"].lower() == "if-match":
            parameter["required"] = True


def _complete(
    operation: dict[str, Any], route: APIRoute, answers: list[ErrorExample], permissions: list[str]
) -> None:
    responses = operation.setdefault("responses", {})
    media = responses.get("422", {}).get("content", {}).get("application/json", {})
    if media.get("schema", {}).get("$ref") == _FASTAPI_422_REF:
        own = invalid_fields(route)
        if own is None:  # FastAPI documents a 422 the route cannot give
            del responses["422"]
        else:
            merge_answers(responses, [own], replace=True)
    merge_answers(responses, [*_body_answers(operation, route), *answers])
    _require_if_match(operation)
    # said, not left out: these routes need no credentials
    operation.setdefault("security", [])
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-ID"] = _REQUEST_ID
    if permissions:
        operation["x-permissions"] = permissions
        description = operation.get("description", "")
        if not all(p in description for p in permissions):
            needed = ", ".join(f"`{p}`" for p in permissions)
            operation["description"] = f"{description}\n\n**Permission:** {needed}"


def _components(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if _FASTAPI_422_REF not in json.dumps(schema["paths"]):
        components.pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in json.dumps(schema):
            components.pop("ValidationError", None)
    template = "#/components/schemas/{model}"
    models: list[type[BaseModel]] = [ValidationIssue, *_COMPONENTS.values()]
    for model in models:
        found = model.model_json_schema(ref_template=template)
        components.update(found.pop("$defs", {}))
        components[model.__name__] = found


def _error_schema_name(status: str, schema: dict[str, Any]) -> str:
    codes = schema["properties"]["error"]["enum"]
    words = "".join(w.capitalize() for code in codes for w in code.split("_"))
    details = "WithDetails" if "details" in schema["properties"] else ""
    return f"Error{status}{words}{details}"


def _name_error_schemas(schema: dict[str, Any]) -> None:
    """Each distinct error shape (a status and its codes) becomes one named component.

    Routes with the same answers share it (``Error401InvalidRequestInvalidToken``), so
    generated clients get one class per kind of error rather than one per route and status.
    """
    components = schema["components"]["schemas"]
    for methods in schema["paths"].values():
        for operation in methods.values():
            for status, response in operation.get("responses", {}).items():
                media = response.get("content", {}).get("application/json", {})
                inline = media.get("schema", {})
                if "enum" not in inline.get("properties", {}).get("error", {}):
                    continue
                name = _error_schema_name(status, inline)
                described = {
                    "title": name,
                    "description": f"The errors of status {status} with these codes.",
                }
                components[name] = described | inline
                media["schema"] = {"$ref": f"#/components/schemas/{name}"}


def _documented(route: RouteContext) -> bool:
    return isinstance(route.original_route, APIRoute) and bool(route.include_in_schema)


def complete_responses(app: FastAPI) -> None:
    """Make ``app.openapi()`` add the answers every route can give but may not document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for route in iter_route_contexts(app.routes):
            if not _documented(route):
                continue
            assert isinstance(route.original_route, APIRoute)  # noqa: S101 - _documented says so
            answers, permissions = security_answers(route.dependant)
            for method in route.methods or ():
                operation = schema["paths"].get(route.path_format or "", {}).get(method.lower())
                if operation is not None:
                    # a change made with the session cookie must pass the CSRF check
                    csrf = current_principal in _calls(route.dependant) and method in UNSAFE_METHODS
                    refusals = [ErrorExample.of(e) for e in CSRF_REFUSALS] if csrf else []
                    _complete(operation, route.original_route, [*answers, *refusals], permissions)
        _components(schema)
        _name_error_schemas(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
