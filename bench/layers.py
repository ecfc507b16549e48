"""Where every microsecond of a request goes: each layer of the gateway switched off in turn.

Run by ``make bench`` (``python -m bench.layers``, with the gateway's ``GATEWAY_*`` settings and
``BENCH_LIMIT_PRINCIPAL``, on the server's core) and printed as the cost table. Each variant is
a fresh app, started with its lifespan, and driven in this process through its ASGI interface
(no socket, no HTTP parsing) for ``--requests`` requests; the figure is CPU time per request
(``time.process_time``: every thread of the process, the log writer's included), the lowest of
``--repeats`` runs. CPU time, not wall time, so that a neighbour on the machine does not move the
figures much; the layer's cost is the difference between two variants that differ in that layer
only:

Starting from (b), ``GET /auth/me`` with the bench's cached token at the run's log level, each
variant takes one more layer away: the access line (``app.access`` off), the request metrics,
the observability middleware, the CORS middleware, the security dependency (``/bench/limit``:
the same handler without authentication), the handler (the same bytes made once, returned as they
are, through the same router) and finally the gateway itself (``bare``: row (a0)'s app). The
differences telescope: the layers add up to (b) - bare exactly.

uvicorn's share (reading the socket, parsing HTTP with httptools, writing the answer) is not
in here: the runner takes it from the server's CPU time per request in row (a0) minus ``bare``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import logging.config
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Scope

from app.observability.logging import uvicorn_log_config
from app.observability.middleware import ObservabilityMiddleware
from bench.app import LIMIT_PATH, create_bench_app
from bench.bare_app import create_bare_app


@dataclass(frozen=True)
class Variant:
    """One app to drive: how it is built, the path asked, and what it logs."""

    name: str
    build: Callable[[], FastAPI]
    path: str = LIMIT_PATH
    with_token: bool = False
    access_line: bool = True


def _request_scope(path: str, token: str | None) -> Scope:
    headers = [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _drive(app: ASGIApp, scope: Scope, requests: int) -> float:
    """CPU seconds per request over ``requests`` sequential requests (after a warm-up)."""
    status: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    async def one() -> None:
        await app(dict(scope, headers=list(scope["headers"])), receive, send)

    for _ in range(200):
        await one()
    if set(status) != {200}:
        raise RuntimeError(f"{scope['path']} answered {sorted(set(status))}")
    gc.collect()
    started = time.process_time()
    for _ in range(requests):
        await one()
    return (time.process_time() - started) / requests


def _without(app: FastAPI, *classes: type) -> FastAPI:
    app.user_middleware = [m for m in app.user_middleware if not _is_one_of(m.cls, classes)]
    app.middleware_stack = None  # rebuilt on the next call, without them
    return app


def _is_one_of(factory: object, classes: tuple[type, ...]) -> bool:
    return any(factory is cls for cls in classes)


def _no_metrics(app: FastAPI) -> FastAPI:
    def nothing(*args: object) -> None:
        return None

    app.state.metrics.observe_request = nothing
    return app


def variants() -> list[Variant]:
    """The apps, from the bare route to the gateway's ``/auth/me``."""
    from starlette.middleware.cors import CORSMiddleware

    def gateway(*steps: Callable[[FastAPI], FastAPI]) -> Callable[[], FastAPI]:
        def build() -> FastAPI:
            app = create_bench_app()
            for step in steps:
                app = step(app)
            return app

        return build

    def no_observability(app: FastAPI) -> FastAPI:
        return _without(app, ObservabilityMiddleware)

    def no_cors(app: FastAPI) -> FastAPI:
        return _without(app, CORSMiddleware)

    def as_bytes() -> FastAPI:
        return create_bench_app(limit_as_bytes=True)

    me = "/auth/me"
    return [
        Variant("a", gateway()),
        Variant("b", gateway(), path=me, with_token=True),
        Variant("b-no-access-line", gateway(), path=me, with_token=True, access_line=False),
        Variant("b-no-metrics", gateway(_no_metrics), path=me, with_token=True, access_line=False),
        Variant(
            "b-no-observability",
            gateway(no_observability),
            path=me,
            with_token=True,
            access_line=False,
        ),
        Variant(
            "b-no-cors",
            gateway(no_observability, no_cors),
            path=me,
            with_token=True,
            access_line=False,
        ),
        Variant("a-no-cors", gateway(no_observability, no_cors), access_line=False),
        Variant("a-bytes", lambda: no_cors(no_observability(as_bytes())), access_line=False),
        Variant("bare", create_bare_app),
    ]


async def measure(
    token: str, requests: int, repeats: int, only: Sequence[str] = ()
) -> dict[str, float]:
    """Microseconds of CPU per request for each variant: the lowest of ``repeats`` rounds.

    Every app is started first; each round then drives every variant in turn, so that a
    busy spell of the machine falls on all of them rather than on one.
    """
    chosen = [v for v in variants() if not only or v.name in only]
    access = logging.getLogger("app.access")
    runs: dict[str, list[float]] = {v.name: [] for v in chosen}
    async with AsyncExitStack() as stack:
        apps = [
            (v, (await stack.enter_async_context(LifespanManager(v.build()))).app) for v in chosen
        ]
        for _ in range(repeats):
            for variant, app in apps:
                access.disabled = not variant.access_line
                try:
                    scope = _request_scope(variant.path, token if variant.with_token else None)
                    runs[variant.name].append(await _drive(app, scope, requests))
                finally:
                    access.disabled = False
    results = {name: min(seconds) * 1e6 for name, seconds in runs.items()}
    for name, us in results.items():
        print(f"layers: {name:<20} {us:7.1f} us", file=sys.stderr)
    return results


def cost_table(us: dict[str, float], server_us_a0: float | None) -> list[dict[str, Any]]:
    """The layers, each with its microseconds: differences between neighbouring variants."""

    def diff(a: str, b: str) -> float | None:
        return us[a] - us[b] if a in us and b in us else None

    rows: list[tuple[str, float | None]] = [
        (
            "uvicorn + httptools: socket, HTTP parsing, writing (row a0, server CPU - bare)",
            server_us_a0 - us["bare"] if server_us_a0 is not None and "bare" in us else None,
        ),
        ("FastAPI: its own middleware, routing, a handler answering bytes (bare)", us.get("bare")),
        ("the gateway's routers and route class", diff("a-bytes", "bare")),
        (
            "the handler: the principal's JSON written (PrincipalOut's bytes)",
            diff("a-no-cors", "a-bytes"),
        ),
        ("the security dependency, in-process hit", diff("b-no-cors", "a-no-cors")),
        ("CORS middleware (a request without Origin)", diff("b-no-observability", "b-no-cors")),
        (
            "observability middleware: request id, header, timing",
            diff("b-no-metrics", "b-no-observability"),
        ),
        ("request metrics: a counter and a histogram", diff("b-no-access-line", "b-no-metrics")),
        ("the access line: record, mask, format, queue", diff("b", "b-no-access-line")),
    ]
    return [{"layer": layer, "us": None if v is None else round(v, 1)} for layer, v in rows]


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, as the server runs (when installed)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every variant; print their microseconds as JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m bench.layers")
    parser.add_argument("--token", required=True)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--only", default="", help="comma-separated variant names")
    args = parser.parse_args(argv)
    # the server's logging, writing where the bench's servers write: nowhere
    config = uvicorn_log_config(args.log_level)
    config["handlers"]["stdout"]["stream"] = open(os.devnull, "w")  # noqa: SIM115
    logging.config.dictConfig(config)
    only = [name for name in args.only.split(",") if name]
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        results = runner.run(measure(args.token, args.requests, args.repeats, only))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
