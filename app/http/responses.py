"""The one error shape as an OpenAPI model, and the documented error answers per route."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error the gateway answers with."""

    error: str = Field(description="A stable, machine-readable code.", examples=["invalid_token"])
    error_description: str = Field(description="For a human; never contains a token.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors, one per offending field."
    )


_MEANINGS: dict[int, tuple[str, str, str]] = {
    400: ("Malformed request.", "invalid_request", "The body is not valid JSON."),
    401: (
        "Missing, invalid, expired or revoked access token (or wrong credentials on login).",
        "invalid_token",
        "The access token has expired.",
    ),
    403: (
        "The token lacks a permission, or the account may not log in.",
        "insufficient_scope",
        "This route needs the permission(s): read:venues.",
    ),
    404: ("No such resource.", "not_found", "No such resource."),
    409: ("Conflicts with the current state.", "conflict", "The resource already exists."),
    412: ("The If-Match ETag is stale.", "precondition_failed", "The resource has changed."),
    422: ("Invalid fields.", "invalid_request", "The request body or parameters are invalid."),
    428: ("If-Match is required.", "precondition_required", "Send If-Match with the ETag."),
    429: ("Too many attempts or requests; see Retry-After.", "too_many_attempts", "Try later."),
    502: (
        "The identity provider refused the gateway's own configuration.",
        "upstream_misconfigured",
        "The identity provider refused the gateway's configuration; operators are told.",
    ),
    503: (
        "The identity provider is unavailable; see Retry-After.",
        "upstream_unavailable",
        "The identity provider is unavailable; try again shortly.",
    ),
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the given error statuses in the one shape."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description, error, text = _MEANINGS[code]
        out[code] = {
            "model": ErrorBody,
            "description": description,
            "content": {
                "application/json": {"example": {"error": error, "error_description": text}}
            },
        }
    return out
