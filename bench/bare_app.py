"""Row (a0), the physical limit of the stack: a bare FastAPI app under the gateway's server.

One route, no middleware of the gateway's, no dependency, no response model: it answers the
bytes of ``/auth/me``'s body for the bench token (``BENCH_BARE_BODY``, which the runner reads
from the gateway once it serves) as ``application/json``. Served by
:mod:`bench.serve` with the same uvicorn options as the gateway, so the difference between
(a0) and any other row is what the gateway adds on top of uvicorn, httptools and FastAPI.

Serve with ``uvicorn --factory bench.bare_app:create_bare_app``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Response

from bench.app import LIMIT_PATH, STATS_DIR_ENV, instrument

BODY_ENV = "BENCH_BARE_BODY"


def create_bare_app() -> FastAPI:
    """FastAPI with one route, ``GET /bench/limit``, answering ``BENCH_BARE_BODY``."""
    body = os.environ[BODY_ENV].encode()
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(LIMIT_PATH)
    async def get_limit() -> Response:
        """``/auth/me``'s body for the bench token, as bytes."""
        return Response(body, media_type="application/json")

    stats_dir = os.environ.get(STATS_DIR_ENV)
    if stats_dir:
        from pathlib import Path

        instrument(app, Path(stats_dir), lambda: {"pid": os.getpid()})
    return app
