"""Routes that bound request bodies: 413 ``request_too_large`` over a size, 400 for JSON nested
deeper than :data:`MAX_JSON_DEPTH`, 415 for a content type the route does not read, all in the
one shape.

The depth is checked before anything parses the body: Python's JSON decoder, pydantic and the
code after them each recurse once per level, and a body of a few kilobytes can nest thousands
of levels deep.

Only a route that reads a body is checked: one with body fields, or one whose dependency reads
the body itself (a :class:`BodyReader`, as the login's). A body sent to any other route is
never read: uvicorn buffers at most 64 KiB of it (its flow control's high-water mark) and
discards the rest once the answer is sent, so it costs nothing to ignore.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request, Response, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive

from app.http.errors import BadRequest, RequestTooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 64 * 1024
JSON_ADVICE = "Send the body as JSON (application/json, or another application/*+json type)."
FORM_ADVICE = "Send the body as a form (application/x-www-form-urlencoded)."
"""What a 415 says, for a JSON body and for a form."""
MAX_JSON_DEPTH = 32
"""Objects and arrays inside each other, at most; Auth0's metadata and the venue API need few."""

# a JSON string (with its escapes) or a bracket: brackets inside strings do not count
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_OPENING = frozenset(b"[{")


def json_depth(body: bytes) -> int:
    """How deeply the objects and arrays of a JSON text nest (0 for a scalar)."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(body):
        first = match.group()[0]
        if first in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        elif first != 0x22:  # a closing bracket, not a string
            depth -= 1
    return deepest


def too_large(limit: int) -> RequestTooLarge:
    """The 413 of a body over ``limit`` bytes."""
    return RequestTooLarge(f"The request body is larger than {limit} bytes.")


def too_deep() -> BadRequest:
    """The 400 of a JSON body nested deeper than :data:`MAX_JSON_DEPTH`."""
    return BadRequest(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.")


def _too_large(limit: int) -> StarletteHTTPException:
    # FastAPI re-raises an HTTPException from the body read as is, and the app's handler renders
    # it as request_too_large; any other exception there would become a generic 400.
    return StarletteHTTPException(413, detail=too_large(limit).description)


T = TypeVar("T")


class BodyReader(Generic[T]):
    """A dependency that reads the request body itself (no body fields), at most ``max_bytes``.

    A :class:`BodyLimitRoute` depending on one checks its body as it checks body fields, with
    this limit; the reader checks the limit too, for a route of another class.
    """

    def __init__(self, read: Callable[[Request, bytes], Awaitable[T]], *, max_bytes: int) -> None:
        """``read`` gets the request and its body, already read and within ``max_bytes``."""
        self.read = read
        self.max_bytes = max_bytes

    async def __call__(self, request: Request) -> T:
        """What ``read`` makes of the body; 413 over the limit."""
        body = await request.body()
        if len(body) > self.max_bytes:
            raise too_large(self.max_bytes)
        return await self.read(request, body)


def _readers(dependant: Dependant) -> Iterator[BodyReader[Any]]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, BodyReader):
            yield dependency.call
        yield from _readers(dependency)


def _capped(receive: Receive, limit: int) -> Receive:
    received = 0

    async def receive_capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit)
        return message

    return receive_capped


@dataclass(frozen=True)
class _BodyMedia:
    """The content types a route's body is read from."""

    form: bool

    def accepts(self, content_type: str) -> bool:
        kind = content_type.split(";", 1)[0].strip().lower()
        if self.form:
            return kind in {"application/x-www-form-urlencoded", "multipart/form-data"}
        main, _, sub = kind.partition("/")
        return main == "application" and (sub == "json" or sub.endswith("+json"))

    @property
    def advice(self) -> str:
        return FORM_ADVICE if self.form else JSON_ADVICE


def _reads(route: APIRoute) -> _BodyMedia | None:
    if route.body_field is None:
        return None
    return _BodyMedia(form=isinstance(route.body_field.field_info, params.Form))


class BodyLimitRoute(APIRoute):
    """An ``APIRoute`` answering 413 when the body it reads is over its :attr:`body_limit`.

    A declared ``Content-Length`` over the limit is refused before reading; a chunked body is
    counted as it arrives and refused once it passes the limit. A non-empty body in a content
    type the route's body does not read is 415 (FastAPI would call it invalid fields, 422).
    A route that declares no body is not checked: nothing reads it, and uvicorn discards it.
    Should one read it anyway (``await request.body()`` in a handler or a dependency), the
    bytes are still counted against :data:`MAX_BODY_BYTES` (fail closed); the nesting check
    and the 415 come only with a declared body or a :class:`BodyReader`, which is how a route
    must read one.
    """

    max_body_bytes = MAX_BODY_BYTES

    @property
    def body_limit(self) -> int | None:
        """The most bytes of body the route reads; None when it reads no body."""
        limits = [reader.max_bytes for reader in _readers(self.dependant)]
        if self.body_field is not None:
            limits.append(self.max_body_bytes)
        return min(limits, default=None)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, behind the size check."""
        handler = super().get_route_handler()
        limit = self.body_limit
        if limit is None:
            if not (self.methods or set()) - {"GET", "HEAD"}:
                # GET /auth/me and the other reads skip the check and its per-request cost
                # (docs/performance.md)
                return handler
            backstop = self.max_body_bytes

            async def counted_handler(request: Request) -> Response:
                return await handler(Request(request.scope, _capped(request.receive, backstop)))

            return counted_handler
        reads = _reads(self)

        async def limited_handler(request: Request) -> Response:
            declared = request.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared[:16]) > limit:
                raise _too_large(limit)
            capped = Request(request.scope, _capped(request.receive, limit))
            content_type = request.headers.get("content-type", "")
            if reads is not None and not reads.accepts(content_type) and await capped.body():
                raise UnsupportedMediaType(reads.advice)
            # read here (the request keeps it for the handler) to check the nesting first
            if "json" in content_type and json_depth(await capped.body()) > MAX_JSON_DEPTH:
                raise too_deep()
            return await handler(capped)

        return limited_handler
