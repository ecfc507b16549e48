"""The emulator's own control routes, under ``/__emulator/`` (never counted, never faulted).

- ``GET stats``: ``{"requests": {"POST /oauth/token": n, ...}, "grants": {"password": n, ...}}``.
  Request keys are ``"METHOD <route path template>"`` (raw path when no route matches). Grant
  keys are short names of successful grants: ``password``, ``password-realm``,
  ``refresh_token``, ``client_credentials``. ``POST stats/reset`` zeroes both.
- ``GET/POST/DELETE faults``: ``{"path", "status", "count", "delay_ms", "body"?, "headers"?}``
  makes the next ``count`` calls to ``path`` (raw path or route template, any method) wait
  ``delay_ms`` and answer ``status`` (null: only the delay, then the real answer).
- ``GET/POST clock``: ``{"offset_s": 3600}`` moves the emulator's clock (token expiry, refresh
  token lifetimes, rate-limit refills).
- ``POST keys/rotate``: Auth0's rotation: the published next key signs from now on, the current
  one becomes the previous one, a new next key is published; ``{"kid", "next_kid",
  "previous_kid"}``. ``POST keys/revoke-previous``: unpublish the previous key (its tokens stop
  working). ``POST keys/replace-current``: sign with a brand-new key that was never published
  (the current one becomes the previous one), to show what an unannounced key costs.
- ``GET refresh-tokens``: every refresh token ever issued, with ``live``.
- ``DELETE blocks``: forget brute-force failure counters and suspicious-IP throttles (unblocks
  every user and IP).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from emulator.deps import TenantDep
from emulator.state import Fault, Tenant

router = APIRouter(prefix="/__emulator")


class FaultIn(BaseModel):
    """A fault to inject."""

    path: str = Field(pattern=r"^/")
    status: int | None = Field(default=None, ge=100, le=599)
    count: int = Field(default=1, ge=1)
    delay_ms: int = Field(default=0, ge=0, le=120_000)
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)


class ClockIn(BaseModel):
    """A new clock offset."""

    offset_s: float


@router.get("/stats")
async def get_stats(tenant: TenantDep) -> dict[str, dict[str, int]]:
    """Requests per route and successful grants per grant type since the last reset."""
    return {"requests": dict(tenant.requests), "grants": dict(tenant.grants)}


@router.post("/stats/reset", status_code=status.HTTP_204_NO_CONTENT)
async def reset_stats(tenant: TenantDep) -> None:
    """Zero the counters."""
    tenant.requests.clear()
    tenant.grants.clear()


@router.get("/faults")
async def list_faults(tenant: TenantDep) -> list[dict[str, Any]]:
    """The faults still waiting to fire."""
    return [dataclasses.asdict(f) for f in tenant.faults]


@router.post("/faults", status_code=status.HTTP_201_CREATED)
async def create_fault(fault: FaultIn, tenant: TenantDep) -> dict[str, Any]:
    """Register a fault; faults for one path fire in the order they were registered."""
    created = Fault(**fault.model_dump())
    tenant.faults.append(created)
    return dataclasses.asdict(created)


@router.delete("/faults", status_code=status.HTTP_204_NO_CONTENT)
async def delete_faults(tenant: TenantDep) -> None:
    """Clear every fault."""
    tenant.faults.clear()


@router.get("/clock")
async def get_clock(tenant: TenantDep) -> dict[str, float]:
    """The clock offset and the emulator's current time (epoch seconds)."""
    return _clock(tenant)


@router.post("/clock")
async def set_clock(clock: ClockIn, tenant: TenantDep) -> dict[str, float]:
    """Set the clock offset (seconds added to the wall clock)."""
    tenant.clock_offset_s = clock.offset_s
    return _clock(tenant)


def _clock(tenant: Tenant) -> dict[str, float]:
    return {"offset_s": tenant.clock_offset_s, "now": tenant.now()}


@router.post("/keys/rotate")
async def rotate_keys(tenant: TenantDep) -> dict[str, str | None]:
    """Promote the next key to current and the current one to previous; publish a new next."""
    tenant.rotate_keys()
    return _key_set(tenant)


@router.post("/keys/replace-current")
async def replace_current_key(tenant: TenantDep) -> dict[str, str | None]:
    """Sign with a new key no client has seen published; the old one becomes the previous."""
    tenant.replace_current_key()
    return _key_set(tenant)


@router.post("/keys/revoke-previous", response_model=None)
async def revoke_previous_key(tenant: TenantDep) -> dict[str, str | None] | JSONResponse:
    """Unpublish the previous key, so the tokens it signed stop working; 404 if there is none."""
    if tenant.revoke_previous_key() is None:
        return JSONResponse(
            {"error": "not_found", "error_description": "There is no previous key to revoke."},
            status_code=status.HTTP_404_NOT_FOUND,
        )
    return _key_set(tenant)


def _key_set(tenant: Tenant) -> dict[str, str | None]:
    """The kids of the signing key, the next key and the previous key (None when revoked)."""
    previous = tenant.previous_key
    return {
        "kid": tenant.current_key.kid,
        "next_kid": tenant.next_key.kid,
        "previous_kid": previous.kid if previous is not None else None,
    }


@router.get("/refresh-tokens")
async def list_refresh_tokens(tenant: TenantDep) -> list[dict[str, Any]]:
    """Every refresh token issued, oldest first, with whether it still works."""
    tokens = sorted(tenant.refresh_tokens.values(), key=lambda t: t.issued_at)
    return [{**dataclasses.asdict(t), "live": tenant.is_live(t)} for t in tokens]


@router.delete("/blocks", status_code=status.HTTP_204_NO_CONTENT)
async def delete_blocks(tenant: TenantDep) -> None:
    """Forget every brute-force failure counter and every suspicious-IP throttle."""
    tenant.failed_logins.clear()
    tenant.suspicious_ip_limit.reset()
