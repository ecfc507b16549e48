"""``/healthz`` (liveness, no I/O) and ``/readyz`` (memcached, the tenant's keys, the database).

Readiness asks each component at once, each bounded by :data:`COMPONENT_TIMEOUT_S` (memcached
by its own, shorter timeout), so a probe answers within about two seconds whatever is down.
While memcached's circuit breaker is open the cache component answers at once and says so.
With a memcached pool the cache is ready while at least one node answers (the others' keys go
to it), and ``nodes`` reports each node.

memcached and the database are shared by every replica: were their failure a 503, every
replica would leave the load balancer at once, although each still serves (memcached down:
through the database and the in-process tier; the database down: cached tokens, and new ones
checked against the revocations this process has read). So their failure is 200
``degraded``; 503 ``not_ready`` only when this replica cannot serve what another could: no
signing keys of the tenant, or the database unreachable before this process ever read the
revocations (a new token cannot be checked). Each change of status is logged once (WARNING
away from ``ready``, INFO back to it); the probes' own access lines stay at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.cache import MemcachedCache, MemcachedPool
from app.deps.security import ServicesDep
from app.services import Services

log = logging.getLogger(__name__)

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


Status = Literal["ready", "degraded", "not_ready"]


class Readiness(BaseModel):
    """Whether the gateway can serve, component by component."""

    status: Status = Field(
        examples=["ready"],
        description=(
            "ready: every component answers. degraded (still 200): memcached or the database "
            "fails, shared by every replica; this one keeps serving. not_ready (503): this "
            "replica cannot serve: no signing keys of the tenant, or the database unreachable "
            "before this process ever read the revocations."
        ),
    )
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
    backend = services.settings.cache.backend
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
    if not ok:
        if services.revocations.loaded:
            detail += "; new tokens are checked against the revocations this process has read"
        else:
            detail += "; this process has never read the revocations: new tokens cannot be checked"
    return Component(ok=ok, backend=engine.dialect.name, detail=detail)


def _status(services: Services, components: dict[str, Component]) -> Status:
    if all(component.ok for component in components.values()):
        return "ready"
    if not components["jwks"].ok:
        return "not_ready"
    if not components["database"].ok and not services.revocations.loaded:
        return "not_ready"
    return "degraded"


class _StatusLog:
    """The last status a probe found, so that each change is logged once, not each probe."""

    def __init__(self) -> None:
        self.status: Status = "ready"

    def observe(self, status: Status, components: dict[str, Component]) -> None:
        if status == self.status:
            return
        previous, self.status = self.status, status
        if status == "ready":
            log.info("readiness: ready again (was %s)", previous)
            return
        failing = "; ".join(
            f"{name}: {component.detail}"
            for name, component in components.items()
            if not component.ok
        )
        answer = (
            "still serving, /readyz answers 200" if status == "degraded" else "/readyz answers 503"
        )
        log.warning("readiness: %s (was %s), %s; %s", status, previous, answer, failing)


def _status_log(request: Request) -> _StatusLog:
    state = request.app.state
    status_log = getattr(state, "readiness_log", None)
    if not isinstance(status_log, _StatusLog):
        status_log = state.readiness_log = _StatusLog()
    return status_log


@router.get("/healthz")
async def get_health() -> Health:
    """Liveness: the process answers; touches nothing else. No permission."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        200: {
            "description": (
                "This replica can serve: ready, or degraded (memcached or the database, shared "
                "by every replica, fails; each failing component says so with ok false)."
            )
        },
        503: {
            "model": Readiness,
            "description": (
                "not_ready: this replica cannot serve (no signing keys of the tenant, or the "
                "database unreachable before this process ever read the revocations)."
            ),
        },
    },
)
async def get_readiness(request: Request, services: ServicesDep) -> JSONResponse:
    """Readiness: memcached answers in time, the tenant's keys are at hand, the database answers.

    No permission. 200 ``ready``, or 200 ``degraded`` when memcached or the database fails
    (shared by every replica; this one still serves); 503 ``not_ready`` only when this replica
    cannot serve. Each component that fails says so (ok false) with its detail.
    """
    cache, jwks, database = await asyncio.gather(
        _cache(services), _jwks(services), _database(services)
    )
    components = {"cache": cache, "jwks": jwks, "database": database}
    status = _status(services, components)
    _status_log(request).observe(status, components)
    body = Readiness(status=status, components=components)
    return JSONResponse(body.model_dump(), status_code=503 if status == "not_ready" else 200)
