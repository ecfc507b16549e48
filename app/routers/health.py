"""``/healthz`` (liveness, no I/O) and ``/readyz`` (memcached, the tenant's keys, the database).

Readiness asks each component at once, each bounded by :data:`COMPONENT_TIMEOUT_S` (memcached
by its own, shorter timeout), so a probe answers within about two seconds whatever is down.
While memcached's circuit breaker is open the cache component answers at once and says so.
With a memcached pool the cache is ready while at least one node answers (the others' keys go
to it), and ``nodes`` reports each node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.cache import MemcachedCache, MemcachedPool
from app.deps.security import ServicesDep
from app.services import Services

router = APIRouter(tags=["operations"])

COMPONENT_TIMEOUT_S = 2.0
"""The longest a readiness check waits for one component."""


class Health(BaseModel):
    """Liveness."""

    status: str = Field(default="ok", examples=["ok"])


class Node(BaseModel):
    """One memcached node of a pool."""

    ok: bool = Field(examples=[True])
    detail: str = Field(examples=["answers"])


class Component(BaseModel):
    """One dependency's readiness."""

    ok: bool = Field(examples=[True])
    backend: str | None = Field(default=None, examples=["memcached"])
    detail: str = Field(examples=["answered in 0.4 ms"])
    nodes: dict[str, Node] | None = Field(
        default=None,
        description="With a memcached pool: each node (host:port) and whether it answers.",
    )


class Readiness(BaseModel):
    """Whether the gateway can serve, component by component."""

    status: Literal["ready", "not_ready"] = Field(examples=["ready"])
    components: dict[str, Component] = Field(
        description="cache (memcached or memory), jwks (the tenant's signing keys), database.",
        examples=[
            {
                "cache": {"ok": True, "backend": "memcached", "detail": "answered in 0.4 ms"},
                "jwks": {"ok": True, "backend": None, "detail": "keys cached"},
                "database": {"ok": True, "backend": "postgresql", "detail": "answered in 1.2 ms"},
            }
        ],
    )


async def _timed(check: Awaitable[bool], timeout_s: float) -> tuple[bool, str]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            ok = await check
    except TimeoutError:
        return False, f"no answer within {timeout_s:g} s"
    except Exception as exc:  # a probe reports, it never fails itself
        return False, f"failed: {type(exc).__name__}"
    elapsed_ms = (time.perf_counter() - started) * 1000
    return ok, f"answered in {elapsed_ms:.1f} ms" if ok else "did not answer"


def _breaker_detail(node: MemcachedCache) -> str:
    breaker = node.breaker
    return (
        f"circuit breaker open for {breaker.open_for_s:.1f} s after "
        f"{breaker.threshold} failures in a row: memcached operations are answered "
        f"as misses at once; a probe runs every {breaker.cooldown_s:g} s"
    )


async def _pool(pool: MemcachedPool, timeout_s: float) -> Component:
    answered: dict[str, bool] = {}
    # each node's ping is bounded by the cache's own timeout; this one is a backstop
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(COMPONENT_TIMEOUT_S):
            answered = await pool.ping_nodes()
    nodes = {}
    for node in pool.nodes:
        ok = answered.get(node.node, False)
        if ok:
            detail = "answers"
        elif node.breaker.is_open:
            detail = f"ejected, its keys served by the others; {_breaker_detail(node)}"
        else:
            detail = f"did not answer within {timeout_s:g} s"
        nodes[node.node] = Node(ok=ok, detail=detail)
    serving = sum(node.ok for node in nodes.values())
    return Component(
        ok=serving > 0,
        backend="memcached",
        detail=f"{serving} of {len(nodes)} nodes answer",
        nodes=nodes,
    )


async def _cache(services: Services) -> Component:
    backend = services.settings.cache.url.split(":", 1)[0]
    if isinstance(services.cache, MemcachedPool):
        return await _pool(services.cache, services.settings.cache.timeout_s)
    # memcached's ping is bounded by the cache's own timeout; this one is a backstop
    ok, detail = await _timed(services.cache.ping(), COMPONENT_TIMEOUT_S)
    if not ok and backend == "memcached":
        detail = f"memcached did not answer within {services.settings.cache.timeout_s:g} s"
        cache = services.cache
        if isinstance(cache, MemcachedCache) and cache.breaker.is_open:
            detail = _breaker_detail(cache)
    return Component(ok=ok, backend=backend, detail=detail)


async def _jwks(services: Services) -> Component:
    if services.jwks.has_keys:
        return Component(ok=True, detail="keys cached")
    ok, detail = await _timed(services.jwks.warm(), COMPONENT_TIMEOUT_S)
    return Component(ok=ok, detail="keys fetched" if ok else f"tenant keys unreachable ({detail})")


async def _database(services: Services) -> Component:
    engine = services.database.engine

    async def select_one() -> bool:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    ok, detail = await _timed(select_one(), COMPONENT_TIMEOUT_S)
    return Component(ok=ok, backend=engine.dialect.name, detail=detail)


@router.get("/healthz")
async def get_health() -> Health:
    """Liveness: the process answers; touches nothing else. No permission."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A component is not ready (ok false)."}},
)
async def get_readiness(services: ServicesDep) -> JSONResponse:
    """Readiness: memcached answers in time, the tenant's keys are at hand, the database answers.

    No permission. 503 names each component that is not ready.
    """
    cache, jwks, database = await asyncio.gather(
        _cache(services), _jwks(services), _database(services)
    )
    components = {"cache": cache, "jwks": jwks, "database": database}
    ready = all(component.ok for component in components.values())
    body = Readiness(status="ready" if ready else "not_ready", components=components)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
