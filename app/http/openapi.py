"""The OpenAPI document, completed with the answers the framework and the security layer give.

Routes document their own errors (:func:`app.http.responses.error_responses`); some answers come
from layers a route does not see, so they are derived here and added unless the route already
documents that status:

- the bearer dependency: 401 (no, bad or revoked token) and 503 (the tenant's keys or
  ``/userinfo`` unreachable while validating);
- :class:`~app.deps.security.RequireScopes`: 403 naming the permissions, which are also listed in
  ``x-permissions`` and appended to the description when it does not name them;
- a JSON request body: 400 when it is not JSON at all;
- any request body: 413 over :data:`app.http.body_limit.MAX_BODY_BYTES` (every body-taking router
  uses :class:`~app.http.body_limit.BodyLimitRoute`);
- FastAPI's own 422 (``HTTPValidationError``) is rewritten to the one error shape, which is what
  :mod:`app.http.errors` really answers.

So the docs page never forgets an answer a route can give.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from app.deps.security import RequireScopes, current_principal, oauth2_scheme
from app.http.body_limit import MAX_BODY_BYTES

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_FASTAPI_422_REF = "#/components/schemas/HTTPValidationError"


def _error(description: str, code: str, text: str, **extra: Any) -> dict[str, Any]:
    example = {"error": code, "error_description": text, **extra}
    return {
        "description": description,
        "content": {"application/json": {"schema": _ERROR_REF, "example": example}},
    }


_UNAUTHORIZED = _error(
    "Missing, invalid, expired or revoked access token.",
    "invalid_token",
    "The access token has expired.",
)
_UNAVAILABLE = _error(
    "The identity provider is needed to check the token and is unavailable; see Retry-After.",
    "upstream_unavailable",
    "The identity provider is unavailable; try again shortly.",
)
_NOT_JSON = _error(
    "The body is not valid JSON.", "invalid_request", "There was an error parsing the body"
)
_TOO_LARGE = _error(
    "The request body is over the size limit.",
    "request_too_large",
    f"The request body is larger than {MAX_BODY_BYTES} bytes.",
)
_INVALID = _error(
    "Invalid fields: ``details`` has one entry per field.",
    "invalid_request",
    "The request body or parameters are invalid.",
    details=[{"loc": ["query", "limit"], "msg": "Input should be a valid integer", "type": "int"}],
)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def security_answers(dependant: Dependant) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The error answers a route's security dependencies can give, and its permissions."""
    calls = list(_calls(dependant))
    permissions = sorted(
        {p for call in calls if isinstance(call, RequireScopes) for p in call.permissions}
    )
    answers: dict[str, dict[str, Any]] = {}
    if oauth2_scheme in calls or current_principal in calls:
        answers["401"] = _UNAUTHORIZED
    if current_principal in calls:
        answers["503"] = _UNAVAILABLE
    if permissions:
        answers["403"] = _error(
            "The token lacks the permission(s) this route needs.",
            "insufficient_scope",
            f"This route needs the permission(s): {' '.join(permissions)}.",
        )
    return answers, permissions


def _complete(operation: dict[str, Any], answers: dict[str, Any], permissions: list[str]) -> None:
    responses = operation.setdefault("responses", {})
    if "application/json" in operation.get("requestBody", {}).get("content", {}):
        responses.setdefault("400", _NOT_JSON)
    if "requestBody" in operation:
        responses.setdefault("413", _TOO_LARGE)
    for status, answer in answers.items():
        responses.setdefault(status, answer)
    media = responses.get("422", {}).get("content", {}).get("application/json", {})
    if media.get("schema", {}).get("$ref") == _FASTAPI_422_REF:
        responses["422"] = _INVALID
    if permissions:
        operation["x-permissions"] = permissions
        description = operation.get("description", "")
        if not all(p in description for p in permissions):
            needed = ", ".join(f"`{p}`" for p in permissions)
            operation["description"] = f"{description}\n\n**Permission:** {needed}"


def _drop_unused_validation_schemas(schema: dict[str, Any]) -> None:
    components = schema.get("components", {}).get("schemas", {})
    if _FASTAPI_422_REF not in json.dumps(schema["paths"]):
        components.pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in json.dumps(schema):
            components.pop("ValidationError", None)


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
            answers, permissions = security_answers(route.dependant)
            for method in route.methods or ():
                operation = schema["paths"].get(route.path_format or "", {}).get(method.lower())
                if operation is not None:
                    _complete(operation, answers, permissions)
        _drop_unused_validation_schemas(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
