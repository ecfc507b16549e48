"""``/healthz`` (liveness, no I/O) and ``/readyz`` (memcached and the tenant's keys)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.deps.security import ServicesDep
from app.services import Services

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """Liveness."""

    status: str = "ok"


async def _keys_ready(services: Services) -> bool:
    return services.jwks.has_keys or await services.jwks.warm()


@router.get("/healthz")
async def get_health() -> Health:
    """Liveness: the process answers; touches nothing else."""
    return Health()


@router.get("/readyz", responses={503: {"description": "A component is not ready."}})
async def get_readiness(services: ServicesDep) -> JSONResponse:
    """Readiness: the cache answers in time and the tenant's signing keys are at hand."""
    cache_ok, keys_ok = await asyncio.gather(services.cache.ping(), _keys_ready(services))
    components = {
        "cache": {"ok": cache_ok, "url_scheme": services.settings.cache.url.split(":", 1)[0]},
        "jwks": {"ok": keys_ok},
    }
    ready = cache_ok and keys_ok
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "components": components},
        status_code=200 if ready else 503,
    )
