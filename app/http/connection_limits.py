"""Limits on each HTTP connection before a request reaches the app: header size, header count,
and how long a client may take to send its request.

uvicorn's httptools protocol has none of these. llhttp puts no bound on a header, and httptools
joins the pieces of one header in Python until it ends, so a 64 MB header line is read, joined
and answered; any number of header lines is accepted; and a request that never completes holds
its connection for ever (uvicorn's ``timeout_keep_alive`` starts only after a response).
uvicorn's own knobs do not cover it: ``h11_max_incomplete_event_size`` applies to the h11
protocol only (a slower parser), only while the header is still incomplete (a large header
that arrives whole passes), and answers 400; ``limit_concurrency`` answers 503 beyond a number
of connections, which slow clients fill as well as anyone.

:class:`LimitedHttpToolsProtocol` is uvicorn's httptools protocol with those three checks; it is
selected with uvicorn's ``http=`` option (``app.server.SERVER_OPTIONS``). Its refusals never
reach the app; they are written by the protocol in the one error shape:

- **431** ``request_header_too_large`` when the request line and header lines pass
  ``max_header_bytes``, or the header lines ``max_header_count``; the client's further bytes
  are read and dropped for a moment, so the answer is not lost to a TCP reset;
- **408** ``request_timeout`` when a request has begun but its header is not complete within
  ``header_timeout_s`` (a connection that has sent nothing by then is closed without a word,
  as after a keep-alive timeout);
- a request whose body is not complete within ``body_timeout_s`` of its header: the connection
  is closed (the app, already running, sees the client go away: a 499 access line).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from settings.model import ServerSettings

log = logging.getLogger("app.http.connection_limits")

LINGER_S = 2.0
"""After a 431, how long the client's further bytes are read and dropped before closing."""


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request the protocol refuses."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits and read timeouts (module docstring).

    Header bytes are counted twice: exactly, per header line as the parser hands each one over,
    and coarsely, as every byte received while a header is incomplete, because the parser keeps
    a header line it has not finished to itself. The coarse count may miss at most the one read
    in which the previous request ended.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ServerSettings | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits or ServerSettings()
        self._in_head = True
        self._head_begun = False
        self._head_received = 0
        self._head_counted = 0
        self._refusal: tuple[int, str, str] | None = None
        self._lingering = False
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_s = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's header."""
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser as uvicorn does, refusing a request past the limits.

        uvicorn's own method answers every parser error with 400, the refusals included (a
        callback's exception reaches it as a parser error), hence this copy of it.
        """
        if self._lingering:
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._disarm()
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_received > self.limits.max_header_bytes:
            self._refuse(*self._too_large_bytes())

    # parser callbacks

    def on_message_begin(self) -> None:
        """A request starts: its header's clock starts unless the connection's is running."""
        super().on_message_begin()
        self._head_begun = True
        self._head_counted = 0
        if self._deadline is None:
            self._arm(self.limits.header_timeout_s)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header line against both limits before uvicorn keeps it."""
        if len(self.headers) >= self.limits.max_header_count:
            self._refusal = (
                431,
                "request_header_too_large",
                f"The request has more than {self.limits.max_header_count} header fields.",
            )
            raise _Refused
        self._head_counted += len(name) + len(value) + 4  # ": " and CRLF
        self._check_head_size()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The header is in: its clock stops and the body's starts."""
        self._check_head_size()  # a long request line with no header line after it
        self._in_head = False
        self._disarm()
        super().on_headers_complete()
        if self.parser.should_upgrade() and self._should_upgrade():
            return
        self._arm(self.limits.body_timeout_s)

    def on_message_complete(self) -> None:
        """The whole request is in: no clock runs until the next one begins."""
        super().on_message_complete()
        self._disarm()
        self._in_head = True
        self._head_begun = False
        self._head_received = 0

    # refusals and deadlines

    def _check_head_size(self) -> None:
        if len(self.url) + self._head_counted > self.limits.max_header_bytes:
            self._refusal = self._too_large_bytes()
            raise _Refused

    def _too_large_bytes(self) -> tuple[int, str, str]:
        return (
            431,
            "request_header_too_large",
            f"The request header is larger than {self.limits.max_header_bytes} bytes.",
        )

    def _refuse(self, status: int, code: str, description: str) -> None:
        """Answer ``status`` in the one error shape and close, lingering to read what is sent."""
        self._disarm()
        self._lingering = True
        log.info("refused a request: %s %s", status, code)
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined request refused while the one before it is answered: an answer now
            # would land inside that response, so the connection just ends
            self.transport.close()
            return
        self._write_error(status, code, description)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def _write_error(self, status: int, code: str, description: str) -> None:
        error = {"error": code, "error_description": description}
        body = json.dumps(error, separators=(",", ":")).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline_s = seconds
        self._deadline = self.loop.call_later(seconds, self._on_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        awaiting_continue = cycle is not None and cycle.waiting_for_100_continue
        if self.flow.read_paused or (answering and (self._in_head or awaiting_continue)):
            # not the client's delay: the gateway stopped reading, still answers the request
            # before this one (pipelined), or has not yet sent 100 Continue; the clock restarts
            self._arm(self._deadline_s)
            return
        if not self._in_head:
            log.info("closed a connection: the request body took over %g s", self._deadline_s)
            self.transport.close()
        elif self._head_begun:
            log.info("closed a connection: the request header took over %g s", self._deadline_s)
            self._write_error(
                408,
                "request_timeout",
                f"The request header did not arrive within {self._deadline_s:g} s.",
            )
            self.transport.close()
        else:
            self.transport.close()
