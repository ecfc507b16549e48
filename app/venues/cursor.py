"""The opaque, URL-safe page cursor: the sort key of the last venue on a page."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass

from app.http.errors import BadRequest
from app.venues.schemas import check_text

#: Cursors are short; anything longer was not issued here.
CURSOR_MAX_CHARS = 2048


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the venue with this folded name and id."""

    name_key: str
    id: uuid.UUID

    def encode(self) -> str:
        """Base64url of ``[name_key, id]`` without padding."""
        raw = json.dumps([self.name_key, str(self.id)], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Read a cursor back; 400 ``invalid_request`` for anything this API did not issue."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            name_key, venue_id = json.loads(raw)
            if not isinstance(name_key, str) or not isinstance(venue_id, str):
                raise TypeError("cursor fields are not strings")
            return cls(check_text(name_key), uuid.UUID(venue_id))
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, RecursionError) as exc:
            raise BadRequest(
                "The cursor is not one this API issued; start again from the first page."
            ) from exc
