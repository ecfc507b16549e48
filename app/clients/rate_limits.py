"""How long Auth0 asks a caller to wait after a 429 (docs/emulator.md, the "Rate limit" facts)."""

from __future__ import annotations

import email.utils
import math

import httpx


def requested_wait_s(headers: httpx.Headers, now: float) -> float | None:
    """Seconds from ``Retry-After`` (seconds or an HTTP date), else ``X-RateLimit-Reset``.

    ``X-RateLimit-Reset`` is epoch seconds; a small number can only be a delta. None when
    neither header says anything usable; the caller picks its default and its bounds.
    """
    retry_after = headers.get("Retry-After", "").strip()
    if retry_after:
        try:
            seconds = float(retry_after)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(retry_after).timestamp() - now
            except (TypeError, ValueError, IndexError):
                seconds = math.nan
        if math.isfinite(seconds):
            return seconds
    reset = headers.get("X-RateLimit-Reset", "").strip()
    try:
        value = float(reset)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return value - now if value > 1_000_000_000 else value
