"""Routes that bound request bodies: 413 ``request_too_large`` over a size, 400 for JSON nested
deeper than :data:`MAX_JSON_DEPTH`, 415 for a content type the route does not read, all in the
one shape.

The depth is checked before anything parses the body: Python's JSON decoder, pydantic and the
code after them each recurse once per level, and a body of a few kilobytes can nest thousands
of levels deep.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, params
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive

from app.http.errors import BadRequest, UnsupportedMediaType

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


def _too_large(limit: int) -> StarletteHTTPException:
    # FastAPI re-raises an HTTPException from the body read as is, and the app's handler renders
    # it as request_too_large; any other exception there would become a generic 400.
    return StarletteHTTPException(413, detail=f"The request body is larger than {limit} bytes.")


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
    """An ``APIRoute`` answering 413 when the body is over :data:`MAX_BODY_BYTES`.

    A declared ``Content-Length`` over the limit is refused before reading; a chunked body is
    counted as it arrives and refused once it passes the limit. A non-empty body in a content
    type the route's body does not read is 415 (FastAPI would call it invalid fields, 422).
    """

    max_body_bytes = MAX_BODY_BYTES

    @property
    def _reads_body(self) -> bool:
        return not (
            self.body_field is None and self.methods is not None and self.methods <= {"GET", "HEAD"}
        )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, behind the size check."""
        handler = super().get_route_handler()
        if not self._reads_body:
            # nothing here reads a body: GET /auth/me and GET /venues/{id} skip the check's
            # per-request cost (docs/performance.md)
            return handler
        limit = self.max_body_bytes
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
            if (
                "json" in request.headers.get("content-type", "")
                and json_depth(await capped.body()) > MAX_JSON_DEPTH
            ):
                raise BadRequest(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.")
            return await handler(capped)

        return limited_handler
