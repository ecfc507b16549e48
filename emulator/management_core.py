"""What every Management API route shares: errors, auth, rate limit, bodies, pages.

Auth0's Management API answers errors as ``{"statusCode", "error", "message", "errorCode"}``
(docs/emulator.md, "Management API"), never as FastAPI's ``{"detail": ...}``.
:class:`ManagementRoute` gives every route of the Management routers that shape without
app-wide exception handlers, so the Authentication API keeps its own error format. It also
spends the tenant-wide rate limit and puts the ``X-RateLimit-*`` headers on every answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from emulator.state import ListLimits, Tenant

Json = dict[str, Any]
T = TypeVar("T")
Page = Annotated[int | None, Query(ge=0)]  # 0-based
# at most the tenant's ListLimits.per_page_max, checked against the tenant by check_page_size
PerPage = Annotated[int | None, Query(ge=0)]
#: Items of a page when the caller does not say (users, and ``take`` of client grants).
DEFAULT_PER_PAGE = 50


def default_page_size(limits: ListLimits) -> int:
    """A page's items when the caller does not say: 50, or the tenant's lower cap."""
    return min(DEFAULT_PER_PAGE, limits.per_page_max)


def _page_size(per_page: int | None, default_per_page: int | None) -> int:
    return per_page if per_page is not None else (default_per_page or DEFAULT_PER_PAGE)


# The body of a live tenant-wide 429, pasted in auth0-extensions/auth0-reset-tenant#31 (the
# Authentication API's documented text, "Too many requests. Check the X-RateLimit-Limit, ...",
# is not what the Management API says).
RATE_LIMIT_MESSAGE = "Global limit has been reached"


class ManagementError(Exception):
    """An error answered in the Management API's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        *,
        attributes: Json | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.attributes = attributes

    def response(self) -> JSONResponse:
        """The JSON answer."""
        body: Json = {
            "statusCode": self.status,
            "error": HTTPStatus(self.status).phrase,
            "message": self.message,
        }
        if self.error_code is not None:
            body["errorCode"] = self.error_code
        if self.attributes is not None:
            body["attributes"] = self.attributes
        return JSONResponse(body, status_code=self.status)


def invalid_body(detail: str, prop: str | None = None) -> ManagementError:
    """``400 invalid_body``: ``Payload validation error: '<detail>' on property <prop>.``"""
    where = f" on property {prop}" if prop else ""
    return ManagementError(400, f"Payload validation error: '{detail}'{where}.", "invalid_body")


def invalid_query(detail: str, prop: str | None = None) -> ManagementError:
    """``400 invalid_query_string``, worded like the body errors (exact text UNCONFIRMED)."""
    where = f" on property {prop}" if prop else ""
    return ManagementError(
        400, f"Query validation error: '{detail}'{where}.", "invalid_query_string"
    )


def not_found(message: str, error_code: str) -> ManagementError:
    """``404`` with Auth0's ``inexistent_*`` codes."""
    return ManagementError(404, message, error_code)


def conflict(message: str, error_code: str = "conflict") -> ManagementError:
    """``409``."""
    return ManagementError(409, message, error_code)


def found(item: T | None, message: str, error_code: str) -> T:
    """``item`` itself, or when it is None the ``404`` that :func:`not_found` makes."""
    if item is None:
        raise not_found(message, error_code)
    return item


# -- the route class ---------------------------------------------------------------------------


def tenant_of(request: Request) -> Tenant:
    """The tenant this emulator serves."""
    tenant: Tenant = request.app.state.tenant
    return tenant


class ManagementRoute(APIRoute):
    """An APIRoute that rate-limits and answers every failure in the Management shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler: rate limit first, then map errors, then add headers."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            tenant = tenant_of(request)
            limit = tenant.management_limit
            # One bucket for the whole tenant: Auth0 keys the Management API limit by tenant.
            allowed, remaining, reset = limit.take("tenant", tenant.now())
            headers = {
                "X-RateLimit-Limit": str(limit.burst),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset),
            }
            if not allowed:
                response: Response = ManagementError(
                    429, RATE_LIMIT_MESSAGE, "too_many_requests"
                ).response()
            else:
                try:
                    response = await handler(request)
                except ManagementError as exc:
                    response = exc.response()
                except RequestValidationError as exc:
                    response = _query_error(exc.errors()).response()
            response.headers.update(headers)
            return response

        return handle


def check_page_size(size: int | None, name: str, tenant: Tenant) -> None:
    """``per_page`` or ``take`` no larger than the tenant allows, answered as the schema's
    ``maximum`` would be."""
    maximum = tenant.list_limits.per_page_max
    if size is not None and size > maximum:
        raise invalid_query(f"Value {size} is greater than maximum {maximum}", name)


def _query_error(errors: Sequence[Any]) -> ManagementError:
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ()) if part != "query"]
    prop = ".".join(loc) or None
    kind = first.get("type", "")
    ctx = first.get("ctx", {})
    value = first.get("input")
    if kind == "missing":
        return invalid_query(f"Missing required property: {prop}")
    if kind == "less_than_equal":
        return invalid_query(f"Value {value} is greater than maximum {ctx.get('le')}", prop)
    if kind == "greater_than_equal":
        return invalid_query(f"Value {value} is less than minimum {ctx.get('ge')}", prop)
    if kind == "int_parsing":
        return invalid_query("Expected type integer but found type string", prop)
    if kind == "bool_parsing":
        return invalid_query("Expected type boolean but found type string", prop)
    return invalid_query(str(first.get("msg", "Invalid query string")), prop)


# -- authentication ----------------------------------------------------------------------------


class RequireScope:
    """Dependency: a valid Management API token carrying any of ``scopes``; returns the tenant."""

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes

    async def __call__(self, request: Request) -> Tenant:
        """Check the bearer token, then the scope."""
        tenant = tenant_of(request)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("Invalid token.")
        claims, reason = tenant.inspect_token(token.strip(), tenant.management_audience)
        if claims is None:
            if reason == "expired":
                raise _unauthorized("Expired token received for JSON Web Token validation")
            raise _unauthorized("Invalid token.")
        granted = set(str(claims.get("scope", "")).split())
        if not granted.intersection(self.scopes):
            raise ManagementError(
                403,
                f"Insufficient scope, expected any of: {','.join(self.scopes)}",
                "insufficient_scope",
            )
        return tenant


def _unauthorized(message: str) -> ManagementError:
    return ManagementError(401, message, attributes={"error": message})


# -- bodies ------------------------------------------------------------------------------------

_JSON_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def json_type(value: Any) -> str:
    """The JSON Schema type name of a parsed JSON value."""
    return _JSON_TYPES.get(type(value), "object")


@dataclass(frozen=True)
class Prop:
    """One property of a request body, in JSON Schema terms (Auth0 validates with JSON Schema)."""

    type: str  # string | boolean | integer | number | object | array
    nullable: bool = False
    enum: tuple[str, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    items: Prop | None = None
    fields: Schema | None = None  # for objects: their own schema
    values: Prop | None = None  # for objects: what every value must be


@dataclass(frozen=True)
class Schema:
    """An object schema: its properties, which are required, whether others are allowed."""

    props: dict[str, Prop]
    required: tuple[str, ...] = ()
    additional: bool = False


async def read_body(request: Request, schema: Schema) -> Json:
    """The request's JSON object, checked against ``schema`` (an empty body is ``{}``)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ManagementError(400, "Invalid request payload JSON format", "invalid_body") from None
    check_object(body, schema)
    result: Json = body
    return result


def reject_fields(body: Json, names: Sequence[str]) -> None:
    """``invalid_body`` naming those of ``names`` the body sets (read-only fields, say)."""
    given = [name for name in names if name in body]
    if given:
        raise invalid_body(f"Additional properties not allowed: {','.join(given)}")


def check_object(value: Any, schema: Schema, where: str | None = None) -> None:
    """Raise ``invalid_body`` with a z-schema style message for the first violation."""
    if not isinstance(value, dict):
        raise invalid_body(f"Expected type object but found type {json_type(value)}", where)
    for name in schema.required:
        if name not in value:
            raise invalid_body(f"Missing required property: {name}", where)
    if not schema.additional:
        unknown = [name for name in value if name not in schema.props]
        if unknown:
            raise invalid_body(f"Additional properties not allowed: {','.join(unknown)}", where)
    for name, prop in schema.props.items():
        if name in value:
            check_value(value[name], prop, f"{where}.{name}" if where else name)


def check_value(value: Any, prop: Prop, where: str) -> None:
    """Check one value against its property."""
    if value is None and prop.nullable:
        return
    found = json_type(value)
    accepted = {prop.type, "integer"} if prop.type == "number" else {prop.type}
    if found not in accepted:
        raise invalid_body(f"Expected type {prop.type} but found type {found}", where)
    if prop.enum is not None and value not in prop.enum:
        raise invalid_body(f"No enum match for: {json.dumps(value)}", where)
    if isinstance(value, str):
        if prop.min_length is not None and len(value) < prop.min_length:
            raise invalid_body(
                f"String is too short ({len(value)} chars), minimum {prop.min_length}", where
            )
        if prop.max_length is not None and len(value) > prop.max_length:
            raise invalid_body(
                f"String is too long ({len(value)} chars), maximum {prop.max_length}", where
            )
        if prop.pattern is not None and not re.search(prop.pattern, value):
            raise invalid_body(f"String does not match pattern {prop.pattern}: {value}", where)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if prop.minimum is not None and value < prop.minimum:
            raise invalid_body(f"Value {value} is less than minimum {prop.minimum}", where)
        if prop.maximum is not None and value > prop.maximum:
            raise invalid_body(f"Value {value} is greater than maximum {prop.maximum}", where)
    if isinstance(value, list) and prop.items is not None:
        for index, item in enumerate(value):
            check_value(item, prop.items, f"{where}[{index}]")
    if isinstance(value, dict):
        if prop.fields is not None:
            check_object(value, prop.fields, where)
        if prop.values is not None:
            for key, item in value.items():
                check_value(item, prop.values, f"{where}.{key}")


# -- lists -------------------------------------------------------------------------------------


def paginate(
    items: Sequence[Json],
    key: str,
    *,
    page: int | None,
    per_page: int | None,
    include_totals: bool,
    unpaginated_max: int,
    default_per_page: int | None = None,
    length: bool = False,
) -> list[Json] | Json:
    """A bare array, or with ``include_totals`` ``{start, limit, total, <key>}``.

    ``default_per_page`` None means paging is off when neither ``page`` nor ``per_page`` is
    sent (Auth0's clients, grants and APIs): the list then stops at its first
    ``unpaginated_max`` items. Users page by 50 by default. ``length`` adds the ``length``
    field that the users list carries.
    """
    if page is None and per_page is None and default_per_page is None:
        start, limit = 0, unpaginated_max
        chosen = list(items[:unpaginated_max])
    else:
        limit = _page_size(per_page, default_per_page)
        start = (page or 0) * limit
        chosen = list(items[start : start + limit])
    if not include_totals:
        return chosen
    wrapped: Json = {"start": start, "limit": limit}
    if length:
        wrapped["length"] = len(chosen)
    wrapped["total"] = len(items)
    wrapped[key] = chosen
    return wrapped


@dataclass(frozen=True)
class Paging:
    """A list's ``page`` / ``per_page`` / ``include_totals`` and how that list pages by default.

    ``unpaginated_max``, ``default_per_page`` and ``length`` are those of :func:`paginate`.
    """

    page: int | None = None
    per_page: int | None = None
    include_totals: bool = False
    unpaginated_max: int = ListLimits.unpaginated_max
    default_per_page: int | None = None
    length: bool = False

    @property
    def page_size(self) -> int:
        """The items of a page, when the list is paged."""
        return _page_size(self.per_page, self.default_per_page)

    def answer(
        self,
        items: Iterable[Json],
        key: str,
        fields: str | None = None,
        include_fields: bool = True,
    ) -> list[Json] | Json:
        """``items`` cut to ``fields`` (:func:`select_fields`), then paged (:func:`paginate`)."""
        return paginate(
            [select_fields(item, fields, include_fields) for item in items],
            key,
            page=self.page,
            per_page=self.per_page,
            include_totals=self.include_totals,
            unpaginated_max=self.unpaginated_max,
            default_per_page=self.default_per_page,
            length=self.length,
        )


def paging_query(
    request: Request, page: Page = None, per_page: PerPage = None, include_totals: bool = False
) -> Paging:
    """Dependency: the paging query parameters of a list that is whole unless paged."""
    tenant = tenant_of(request)
    check_page_size(per_page, "per_page", tenant)
    return Paging(page, per_page, include_totals, tenant.list_limits.unpaginated_max)


# FastAPI checks a dependency's query parameters before the route's own. Routes take this one
# right after RequireScope (a bad token still answers first) and after no parameter that can
# fail, so the error reported stays the first one in the order the parameters are declared.
Paged = Annotated[Paging, Depends(paging_query)]


def select_fields(item: Json, fields: str | None, include_fields: bool) -> Json:
    """Auth0's ``fields`` / ``include_fields``: keep only, or drop, the listed fields."""
    if not fields:
        return item
    names = {name.strip() for name in fields.split(",") if name.strip()}
    if include_fields:
        return {k: v for k, v in item.items() if k in names}
    return {k: v for k, v in item.items() if k not in names}


def merge_one_level(current: Json, changes: Json) -> Json:
    """Top-level keys of ``changes`` replace those of ``current``; a ``null`` removes the key."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def without_none(item: Json) -> Json:
    """Drop ``None`` values: Auth0 omits unset fields."""
    return {k: v for k, v in item.items() if v is not None}
