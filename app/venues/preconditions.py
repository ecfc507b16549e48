"""ETags of venues and the ``If-Match`` precondition (RFC 9110 §8.8.3, §13.1.1)."""

from __future__ import annotations

import re

from app.http.errors import BadRequest, GatewayError

#: Versions are stored as 32-bit integers; a larger tag cannot match.
_VERSION_MAX = 2**31 - 1
_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')


class PreconditionFailed(GatewayError):
    """The ``If-Match`` ETag is not the venue's current one (412)."""

    status_code = 412
    code = "precondition_failed"
    description = "The venue has changed since you read it; read it again and retry."


class PreconditionRequired(GatewayError):
    """A change was sent without ``If-Match`` (428)."""

    status_code = 428
    code = "precondition_required"
    description = "Send If-Match with the venue's ETag, so a concurrent change is not overwritten."


def etag(version: int) -> str:
    """The strong ETag of a venue at ``version``: the number in quotes."""
    return f'"{version}"'


def parse_if_match(value: str | None, *, required: bool) -> frozenset[int] | None:
    """The versions an ``If-Match`` header accepts; ``None`` for ``*`` (any) or no header.

    Comparison is strong and exact: a tag matches only as :func:`etag` spells it (``"01"`` and
    ``" 1"`` are not ``"1"``), and weak tags (``W/"3"``) never match. No header is 428 when
    ``required``.
    """
    if value is None:
        if required:
            raise PreconditionRequired
        return None
    value = value.strip()
    if value == "*":
        return None
    versions: set[int] = set()
    position = 0
    while position < len(value) or position == 0:
        match = _ENTITY_TAG.match(value, position)
        if match is None:
            raise BadRequest('If-Match must be * or a list of quoted ETags such as "3".')
        weak, tag = match.groups()
        version = _version(tag)
        if not weak and version is not None:
            versions.add(version)
        position = match.end()
    return frozenset(versions)


def _version(tag: str) -> int | None:
    """The version whose ETag is exactly ``"tag"``, or None when no version has it."""
    if not (len(tag) <= 10 and tag.isascii() and tag.isdigit()):
        return None
    version = int(tag)
    if version > _VERSION_MAX or etag(version) != f'"{tag}"':
        return None
    return version
