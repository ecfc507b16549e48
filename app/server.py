"""Serving the gateway under uvicorn: ``gateway serve`` and the options tests serve it with.

- One mechanism for the client IP: uvicorn's proxy-header parsing is off, because it would
  trust ``FORWARDED_ALLOW_IPS`` (127.0.0.1 by default) behind the gateway's back; the app reads
  ``X-Forwarded-For`` itself and only from ``GATEWAY_TRUSTED_PROXIES`` (:mod:`app.http.client_ip`),
  under any server, tests included.
- Logs are JSON lines on stdout (:func:`app.observability.logging.uvicorn_log_config`), uvicorn's
  access log is off (it prints query strings) in favour of the gateway's own.
- With several workers every worker writes its metrics to one fresh directory
  (``PROMETHEUS_MULTIPROC_DIR``), removed on exit; an operator's own directory is used as is.
- On SIGTERM uvicorn stops accepting, lets requests in flight finish for up to
  ``graceful_timeout_s`` seconds, runs the lifespan shutdown (closing memcached, the HTTP client
  and the database) and exits.
- Each connection runs :class:`~app.http.connection_limits.LimitedHttpToolsProtocol`: 431 for
  a header over ``GATEWAY_SERVER__MAX_HEADER_BYTES`` or with more than
  ``GATEWAY_SERVER__MAX_HEADER_COUNT`` lines, and a connection closed when its header or body
  is slower than ``GATEWAY_SERVER__HEADER_TIMEOUT_S`` / ``GATEWAY_SERVER__BODY_TIMEOUT_S``.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from app.http.connection_limits import LimitedHttpToolsProtocol
from app.observability.logging import uvicorn_log_config
from app.observability.metrics import MULTIPROC_ENV
from settings.model import ServerSettings, load_settings

APP_FACTORY = "app.main:create_app"

SERVER_OPTIONS: dict[str, Any] = {
    "proxy_headers": False,
    "server_header": False,
    "access_log": False,
    "http": LimitedHttpToolsProtocol,
}
"""uvicorn options every way of serving the gateway shares (see the module docstring); the
connection limits are the defaults of :class:`~settings.model.ServerSettings` here, and
:func:`server_options` applies configured ones."""


def server_options(limits: ServerSettings) -> dict[str, Any]:
    """:data:`SERVER_OPTIONS` with the connection limits of ``limits``.

    uvicorn calls its ``http`` option to make each connection's protocol, so a partial carries
    the limits; unlike a class made on the fly, it pickles, as ``--workers`` needs (uvicorn
    hands its options to spawned worker processes).
    """
    return {**SERVER_OPTIONS, "http": functools.partial(LimitedHttpToolsProtocol, limits=limits)}


@contextmanager
def multiprocess_metrics_dir(workers: int) -> Iterator[str | None]:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` for ``workers`` > 1 to a fresh directory while serving."""
    existing = os.environ.get(MULTIPROC_ENV)
    if existing or workers <= 1:
        yield existing or None
        return
    path = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def shared_local_session_key(workers: int) -> Iterator[None]:
    """In ``local`` without ``GATEWAY_SESSION__KEYS``, one ephemeral key for every worker.

    Each worker would otherwise make up its own: the others could not read its sessions and
    would take its cache entries for forgeries.
    """
    from app.auth.cipher import generate_key
    from settings import load_settings

    variable = "GATEWAY_SESSION__KEYS"
    if workers <= 1 or os.environ.get(variable):
        yield
        return
    settings = load_settings()
    if not settings.is_local or settings.session.keys:
        yield
        return
    os.environ[variable] = generate_key()
    try:
        yield
    finally:
        os.environ.pop(variable, None)


def run(*, host: str, port: int, workers: int, graceful_timeout_s: int, log_level: str) -> None:
    """Serve ``create_app`` (a factory: settings are read in each worker) until signalled.

    The connection limits (``GATEWAY_SERVER__*``) are read here, once, for every worker.
    """
    level = log_level.upper()
    limits = load_settings().server
    with multiprocess_metrics_dir(workers), shared_local_session_key(workers):
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_graceful_shutdown=graceful_timeout_s,
            log_config=uvicorn_log_config(level),
            log_level=level.lower(),
            **server_options(limits),
        )
