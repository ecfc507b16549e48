"""The error answers each route declares, as OpenAPI responses in the one error shape.

A route lists the errors it can give, as the classes of :mod:`app.http.errors` (or instances,
for an error raised with its own code and text)::

    @router.post("/login", responses=error_responses(InvalidCredentials, UpstreamUnavailable))

:func:`error_responses` turns them into one OpenAPI response per status: its codes as an
``enum``, one real example per code, and the headers those errors carry. Answers that come from
layers a route does not see (the bearer check, scope checks, body parsing) are merged in by
:mod:`app.http.openapi` through :func:`merge_answers`, so a new route documents itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field

from app.http.errors import GatewayError

VALIDATION_ISSUE_REF = "#/components/schemas/ValidationIssue"


class ValidationIssue(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int] = Field(
        description="Where: `body`, `query`, `path` or `header`, then the field's path.",
        examples=[["query", "limit"]],
    )
    msg: str = Field(description="What is wrong, for a human.", examples=["Input should be ..."])
    type: str = Field(description="pydantic's error type.", examples=["less_than_equal"])


HEADERS: dict[str, dict[str, Any]] = {
    "WWW-Authenticate": {
        "description": "The authentication challenge (RFC 6750 for Bearer, RFC 7617 for Basic).",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    },
}


@dataclass(frozen=True)
class ErrorExample:
    """One answer a route can give: status, stable code, a real description, its headers."""

    status: int
    code: str
    description: str
    headers: tuple[str, ...] = ()
    details: tuple[Mapping[str, Any], ...] | None = None

    @classmethod
    def of(cls, error: type[GatewayError] | GatewayError) -> ErrorExample:
        """The example an error class (built with no arguments) or instance gives."""
        instance = error() if isinstance(error, type) else error
        documented = sorted(name for name in instance.headers if name in HEADERS)
        return cls(
            status=instance.status_code,
            code=instance.code,
            description=instance.description,
            headers=tuple(documented),
            details=tuple(instance.details) if instance.details is not None else None,
        )

    def body(self) -> dict[str, Any]:
        """The JSON body of this answer."""
        body: dict[str, Any] = {"error": self.code, "error_description": self.description}
        if self.details is not None:
            body["details"] = [dict(d) for d in self.details]
        return body


def _schema(examples: list[ErrorExample]) -> dict[str, Any]:
    codes = sorted({e.code for e in examples})
    properties: dict[str, Any] = {
        "error": {"type": "string", "enum": codes, "description": "A stable code."},
        "error_description": {"type": "string", "description": "For a human."},
    }
    if any(e.details is not None for e in examples):
        properties["details"] = {
            "type": "array",
            "items": {"$ref": VALIDATION_ISSUE_REF},
            "description": "One entry per invalid field.",
        }
    return {
        "type": "object",
        "required": ["error", "error_description"],
        "properties": properties,
    }


def _example_key(example: ErrorExample, taken: Mapping[str, Any]) -> str:
    key, n = example.code, 2
    while key in taken:
        key, n = f"{example.code}_{n}", n + 1
    return key


def response_for(examples: Iterable[ErrorExample]) -> dict[str, Any]:
    """The OpenAPI response of one status: codes as an enum, an example per answer, headers."""
    unique = list({(e.code, e.description): e for e in examples}.values())
    status = unique[0].status
    lines = [f"- `{e.code}`: {e.description}" for e in unique]
    named: dict[str, Any] = {}
    for example in unique:
        named[_example_key(example, named)] = {
            "summary": example.code,
            "value": example.body(),
        }
    response: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}.\n\n" + "\n".join(lines),
        "content": {"application/json": {"schema": _schema(unique), "examples": named}},
    }
    headers = sorted({h for e in unique for h in e.headers})
    if headers:
        response["headers"] = {name: HEADERS[name] for name in headers}
    return response


def examples_of(response: Mapping[str, Any]) -> list[ErrorExample]:
    """The answers a response built by :func:`response_for` documents (empty for others)."""
    found: list[ErrorExample] = []
    headers = tuple(name for name in response.get("headers", {}) if name in HEADERS)
    named = response.get("content", {}).get("application/json", {}).get("examples", {})
    for example in named.values():
        value = example.get("value", {})
        if "error" not in value or "error_description" not in value:
            continue
        details = value.get("details")
        found.append(
            ErrorExample(
                status=0,
                code=value["error"],
                description=value["error_description"],
                headers=headers,
                details=tuple(details) if details is not None else None,
            )
        )
    return found


def merge_answers(
    responses: dict[str, Any], examples: Iterable[ErrorExample], *, replace: bool = False
) -> None:
    """Add ``examples`` to an operation's ``responses``, one response per status.

    A status the route already documents keeps its answers and gains the new ones (an answer
    it already has, the same code and text, is not repeated); with ``replace``, a status's
    answers are these alone (for FastAPI's generic 422).
    """
    by_status: dict[int, list[ErrorExample]] = {}
    for example in examples:
        by_status.setdefault(example.status, []).append(example)
    for status, added in by_status.items():
        existing = [] if replace else examples_of(responses.get(str(status), {}))
        merged = [
            ErrorExample(status, e.code, e.description, e.headers, e.details)
            for e in [*existing, *added]
        ]
        responses[str(status)] = response_for(merged)


def error_responses(*errors: type[GatewayError] | GatewayError) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the errors a route can raise, one per status."""
    by_status: dict[int, list[ErrorExample]] = {}
    for error in errors:
        example = ErrorExample.of(error)
        by_status.setdefault(example.status, []).append(example)
    return {status: response_for(examples) for status, examples in by_status.items()}
