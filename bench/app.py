"""The gateway as the benchmark serves it: ``create_app`` plus what only the benchmark needs.

The product API gets no placeholder routes; the benchmark's extras live in this launcher module:

- ``GET /bench/limit`` (scenario (a), "the limit"): no authentication, and the same handler as
  ``GET /auth/me`` (:func:`app.routers.auth.get_me`) called with a fixed principal, so its body
  is byte for byte the one ``/auth/me`` answers for the bench's cached token. The difference
  between (a) and (b) is therefore exactly the cost of authenticating a request.
- ``SIGUSR1`` makes a worker write its counters (validations, cache hits, GC time) to
  ``$BENCH_STATS_DIR/<pid>.json``: the runner reads every worker's counters this way, with no
  extra route or middleware on the measured path. ``<pid>.ready`` appears once the worker
  serves, which is how the runner knows that all ``--workers N`` are up, and their pids.

Serve with ``uvicorn --factory bench.app:create_bench_app`` (``python -m bench.serve``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Response

from app.auth.principal import Principal
from app.main import create_app
from app.routers import auth as auth_routes
from app.routers.auth import PrincipalOut, get_me, principal_json
from settings import load_settings

LIMIT_PATH = "/bench/limit"
LIMIT_PRINCIPAL_ENV = "BENCH_LIMIT_PRINCIPAL"
STATS_DIR_ENV = "BENCH_STATS_DIR"


def create_bench_app(*, limit_as_bytes: bool = False) -> FastAPI:
    """The gateway from ``GATEWAY_*`` settings, with ``/bench/limit`` and the stats signal.

    ``BENCH_LIMIT_PRINCIPAL`` is the JSON of the principal ``/bench/limit`` answers with (the
    runner builds it from the bench token with the gateway's own code); ``BENCH_STATS_DIR`` is
    where ``SIGUSR1`` writes this worker's counters. ``limit_as_bytes`` (for the cost table,
    :mod:`bench.layers`) makes ``/bench/limit`` answer the same bytes made once, without
    ``/auth/me``'s handler, through the same router and route class.
    """
    app = create_app(load_settings())
    principal = Principal.model_validate_json(os.environ[LIMIT_PRINCIPAL_ENV])

    router = APIRouter(
        prefix=LIMIT_PATH.rsplit("/", 1)[0],
        include_in_schema=False,
        route_class=auth_routes.router.route_class,  # whatever /auth/me's route does per call
    )

    if limit_as_bytes:
        body = principal_json(principal)

        @router.get("/" + LIMIT_PATH.rsplit("/", 1)[1])
        async def get_limit_bytes() -> Response:
            """``/auth/me``'s body as bytes, made once: no handler at work."""
            return Response(body, media_type="application/json")

    else:

        @router.get("/" + LIMIT_PATH.rsplit("/", 1)[1], response_model=PrincipalOut)
        async def get_limit(response: Response) -> Response:
            """The limit: ``/auth/me``'s handler and body without authentication."""
            return await get_me(principal, response)

    app.include_router(router)
    # FastAPI tries routes in order, and an included router costs a match of each of its
    # routes, twice for the router that has the route. So the limit sits in a router of its
    # own right behind the /auth router: it pays the same routing as /auth/me, not less (a
    # top-level route) nor more (last, behind every router of the app).
    limit = app.router.routes.pop()
    after_auth = next(
        i + 1
        for i, route in enumerate(app.router.routes)
        if getattr(route, "original_router", None) is auth_routes.router
    )
    app.router.routes.insert(after_auth, limit)
    stats_dir = os.environ.get(STATS_DIR_ENV)
    if stats_dir:
        gc_clock = GcClock()
        instrument(app, Path(stats_dir), lambda: worker_counters(app, gc_clock))
    return app


class GcClock:
    """Time this process spent in the garbage collector, per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.collections[generation] += 1

    def snapshot(self) -> dict[str, Any]:
        """Collections and seconds spent, per generation."""
        return {
            "collections": list(self.collections),
            "seconds": [round(s, 4) for s in self.seconds],
        }


def worker_counters(app: FastAPI, gc_clock: GcClock | None = None) -> dict[str, Any]:
    """This worker's counters: validations made, callers coalesced, cache hits and misses,
    and the time spent in the garbage collector."""
    services = app.state.services
    cache = services.cache
    return {
        "pid": os.getpid(),
        "gc": gc_clock.snapshot() if gc_clock is not None else None,
        "validations": services.resolver.validations,
        "coalesced_waits": services.resolver.coalesced_waits,
        "cache_hits": getattr(cache, "hits", None),
        "cache_misses": getattr(cache, "misses", None),
        "cache_errors": getattr(cache, "errors", None),
    }


def instrument(app: FastAPI, stats_dir: Path, counters: Callable[[], Mapping[str, Any]]) -> None:
    """Once ``app`` has started: ``SIGUSR1`` writes ``counters()`` to ``<stats_dir>/<pid>.json``,
    and ``<stats_dir>/<pid>.ready`` tells the runner that this worker accepts requests."""
    inner = app.router.lifespan_context

    def write(suffix: str, payload: Mapping[str, Any]) -> None:
        target = stats_dir / f"{os.getpid()}{suffix}"
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps(payload))
        partial.replace(target)  # atomic: the runner never reads half a file

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[None]:
        # the gateway's lifespan keeps its services on app.state and yields no state
        async with inner(running):
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, lambda: write(".json", counters()))
            write(".ready", {"pid": os.getpid()})
            try:
                yield
            finally:
                loop.remove_signal_handler(signal.SIGUSR1)

    app.router.lifespan_context = lifespan
