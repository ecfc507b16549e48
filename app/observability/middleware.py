"""A pure ASGI middleware: a request id, one access-log line and the request metrics.

- The request id is the caller's ``X-Request-ID`` when it is sane (1-128 characters of
  ``A-Z a-z 0-9 . _ : -``, starting with a letter or digit), else a fresh one; it goes back in
  the ``X-Request-ID`` response header and into every log line of the request.
- The access line (logger ``app.access``) names the route template (``/venues/{venue_id}``,
  never ids or query strings), method, status, latency, the client IP (as
  :func:`app.http.client_ip.client_ip` resolves it) and the caller's ``sub`` once authenticated
  (the security dependency leaves it in ``request.state.sub``). Probes and ``/metrics`` log
  at DEBUG, so a scraper and a health checker do not flood the log.
- Metrics label requests by route template, so a scan of random paths makes one ``unmatched``
  series, not one per path.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.client_ip import Network, scope_client_ip
from app.observability import logging as gateway_logging
from app.observability.logging import REDACTION_COMPLETE, redact, request_id_var
from app.observability.metrics import Metrics

log = logging.getLogger("app.access")

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED = "unmatched"

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def incoming_request_id(scope: Scope) -> str | None:
    """The caller's ``X-Request-ID`` when it is sane, else None."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


def route_label(scope: Scope) -> str:
    """The matched route's template, or ``unmatched``."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class ObservabilityMiddleware:
    """Request id, access log and request metrics around every HTTP request."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, trusted_proxies: Sequence[Network]
    ) -> None:
        """Wrap ``app``; ``trusted_proxies`` decide the client IP shown in the access log."""
        self.app = app
        self._metrics = metrics
        self._trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (other scope types pass through untouched)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or os.urandom(16).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500  # what the server answers when the app raises before responding
        started = time.perf_counter()
        context = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_label(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self._metrics.observe_request(route, method, status, seconds)
            self._access_log(scope, state, route, method, status, seconds)
            request_id_var.reset(context)

    def _access_log(
        self,
        scope: Scope,
        state: dict[str, object],
        route: str,
        method: str,
        status: int,
        seconds: float,
    ) -> None:
        if route in _QUIET_ROUTES and status < 500:
            level = logging.DEBUG
        elif status >= 500:
            level = logging.WARNING
        else:
            level = logging.INFO
        if not log.isEnabledFor(level):
            return
        request_id = state.get("request_id")
        fields = {
            # the two fields a caller writes are masked here; the others the gateway computed:
            # the method (one of a fixed few), the route template, the status, the duration,
            # a parsed IP address, the subject of a validated token
            "request_id": redact(request_id) if isinstance(request_id, str) else None,
            "method": method,
            "route": route,
            "path": redact(scope.get("path", "")),
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client_ip": scope_client_ip(scope, self._trusted_proxies),
            "sub": state.get("sub"),
        }
        if gateway_logging.trace_ids is not None:
            # the server span's ids, hex the tracing SDK formatted, and whether it is sampled
            # (tracing on only)
            ids = gateway_logging.trace_ids()
            if ids is not None:
                fields["trace_id"], fields["span_id"], fields["trace_sampled"] = ids
        log.handle(AccessRecord(level, method, route, status, fields))


class AccessRecord(logging.LogRecord):
    """The access line's record, made without :meth:`logging.Logger.makeRecord`'s work.

    A record made the usual way looks up its caller's frame and file name, the thread and the
    process: a quarter of the cost of the line, for fields the access line does not use (they
    are filled with what the access line always has). Its fields come masked
    (:data:`~app.observability.logging.REDACTION_COMPLETE`). Handlers, filters and formatters
    see an ordinary record of the ``app.access`` logger.
    """

    def __init__(
        self, level: int, method: str, route: str, status: int, fields: dict[str, object]
    ) -> None:
        """A record of ``app.access`` at ``level``: ``METHOD ROUTE STATUS`` and ``fields``."""
        # no super().__init__(): every attribute it would set is set here, cheaply
        now = time.time_ns()
        self.name = log.name
        self.msg = "%s %s %s"
        self.args = (method, route, status)
        self.levelname = logging.getLevelName(level)
        self.levelno = level
        self.pathname = __file__
        self.filename = _FILENAME
        self.module = _MODULE
        self.exc_info = None
        self.exc_text = None
        self.stack_info = None
        self.lineno = 0
        self.funcName = "access_log"
        self.created = now / 1e9
        self.msecs = (now % 1_000_000_000) // 1_000_000 + 0.0
        self.relativeCreated = (now / 1e9 - _STARTED) * 1000
        self.thread = None
        self.threadName = None
        self.processName = None
        self.taskName = None
        self.process = os.getpid()
        self.line_fields = fields
        self.__dict__.update(fields)
        setattr(self, REDACTION_COMPLETE, True)  # its fields come masked (see above)


_STARTED: float = getattr(logging, "_startTime", time.time())  # what records measure from
_FILENAME = os.path.basename(__file__)
_MODULE = os.path.splitext(_FILENAME)[0]
