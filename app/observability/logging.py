"""JSON logs, one object a line, that never carry a token, password or secret.

The code logs no credential on purpose; this module is the defense in depth behind that:

- :class:`RedactionFilter` (on the handler) rewrites each record's message and extra fields:
  anything shaped like a JWT, an Auth0 refresh token (``v1.``), a ``Bearer``/``Basic``
  credential, a ``password=``/``client_secret=``/``*_token=`` value, or a configured secret
  (:func:`register_secrets`) is masked; extra fields named like a credential are dropped to
  ``[REDACTED]``.
- :class:`JsonLineFormatter` runs the same masking over the finished line, so exception texts
  and tracebacks are covered too.
- :class:`RequestContextFilter` adds the request id of the request being served to every line.

``gateway serve`` hands :func:`uvicorn_log_config` to uvicorn, so uvicorn's own lines are JSON
too; uvicorn's access log is off (it prints query strings) in favour of the gateway's
(:mod:`app.observability.middleware`).

``gateway dev`` on a terminal writes the same records for a person instead
(:class:`ConsoleFormatter`: one coloured line each, the extra fields as ``key=value``), behind
the same filters and with the same masking of the finished line; ``NO_COLOR`` turns the colours
off. Anywhere else, and always under ``gateway serve``, the lines stay JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, TextIO
from urllib.parse import urlsplit

import orjson

from settings import Settings

MASK = "[REDACTED]"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being served in this task (set by the middleware)."""

trace_ids: Callable[[], tuple[str, str, bool] | None] | None = None
"""The current span's (trace id, span id, sampled) while a span is current, sampled or not;
set when tracing is on (:mod:`app.observability.tracing`), None otherwise, so a line costs
nothing more then."""

_SENSITIVE_NAMES = (
    "password|passwd|client_secret|secret|refresh_token|access_token|id_token|"
    "authorization|cookie|set-cookie|token"
)
_SENSITIVE_KEYS = frozenset(_SENSITIVE_NAMES.split("|"))

# Each pattern stops at quotes and backslashes, so masking a JSON line keeps it valid JSON.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a JWT (JWS compact: header.payload.signature; a JWE has more dots, still caught)
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)+"), MASK),
    # an Auth0 refresh token
    (re.compile(r"(?<![A-Za-z0-9_.-])v1\.[A-Za-z0-9_-]{16,}"), MASK),
    # an HTTP credential after its scheme
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    # name=value, name: value, "name": "value" (also inside an escaped JSON string)
    (
        re.compile(
            rf"(?i)((?<![A-Za-z0-9_])(?:{_SENSITIVE_NAMES})(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?)"
            r"(?!\[REDACTED\])[^\s\"'\\&,;}]+"
        ),
        rf"\1{MASK}",
    ),
)

_secrets: set[str] = set()
_MIN_SECRET_CHARS = 6


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these literal values (the client secret, session keys) wherever they appear.

    Values shorter than six characters are ignored: masking them would garble ordinary text.
    """
    _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_CHARS)


def redact(text: str) -> str:
    """``text`` with every credential-shaped substring and registered secret masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if not _may_hold_credential(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _may_hold_credential(text: str) -> bool:
    """False when none of :data:`_PATTERNS` can match ``text``: a cheap test before them.

    A JWT and a refresh token hold a dot, a ``name=value`` pair a colon or an equals sign, and
    the scheme pattern its scheme's name; a text with none of these is left as it is.
    """
    if "." in text or ":" in text or "=" in text:
        return True
    lowered = text.lower()
    return "bearer" in lowered or "basic" in lowered


REDACTION_COMPLETE = "redaction_complete"
"""A record attribute: True when nothing in the record is left to mask.

:class:`RedactionFilter` sets it once it has masked a record whose every field it could check
(no traceback, no stack, extra fields that are strings or numbers), and leaves a record that
has it alone; the formatters then skip their pass over the finished line. Code that builds a
record of fields it computed itself, masking the few a caller controls, may set it too: the
access line does (:class:`app.observability.middleware.AccessRecord`), so that the line written
for every request pays for masking only its path and request id.
"""

LINE_FIELDS = "line_fields"
"""A record attribute: the record's extra fields as one dict, in their order (the access line);
:class:`JsonLineFormatter` takes them from it instead of sorting them out of the record."""

_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's colour copy of its message: terminal escapes, no information
    REDACTION_COMPLETE,
    LINE_FIELDS,
}
_SCALARS = (int, float, bool, type(None))


class RedactionFilter(logging.Filter):
    """Masks credentials in a record's message and extra fields; never drops a record.

    When that leaves nothing a formatter could still reveal (no traceback, no stack, every
    extra field a string it masked or a number), the record is marked
    :data:`REDACTION_COMPLETE` and the formatters skip their pass over the finished line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; always True."""
        if getattr(record, REDACTION_COMPLETE, False):
            return True  # masked by the code that made it (the access line), or already here
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = None  # a malformed call: the formatter reports it through handleError
        if message is not None:
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, None
        complete = message is not None and not record.exc_info and not record.stack_info
        fields = vars(record)
        for name in [name for name in fields if name not in _RECORD_ATTRS]:
            value = fields[name]
            if name.lower() in _SENSITIVE_KEYS:
                fields[name] = MASK
            elif isinstance(value, str):
                fields[name] = redact(value)
            elif not isinstance(value, _SCALARS):
                complete = False  # a list or a mapping: the line pass covers what it holds
        setattr(record, REDACTION_COMPLETE, complete)
        return True


def _masked_line(record: logging.LogRecord, line: str) -> str:
    """``line`` masked as a whole, unless the filter already masked everything it holds."""
    return line if getattr(record, REDACTION_COMPLETE, False) else redact(line)


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is served, and ``trace_id``,
    ``span_id`` and ``trace_sampled`` while a span is current (tracing on), sampled or not."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the current request id (unless the record has one); always True."""
        request_id = request_id_var.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        if trace_ids is not None and not hasattr(record, "trace_id"):
            ids = trace_ids()
            if ids is not None:
                record.trace_id, record.span_id, record.trace_sampled = ids
        return True


class JsonLineFormatter(logging.Formatter):
    """One JSON object a line: timestamp, level, logger, message, pid, then extra fields.

    orjson encodes the line (several times faster than the standard library's encoder, which
    matters for a line written on every request); a value it cannot encode is written as its
    ``str()``. A traceback goes in ``exc_info``, a stack in ``stack_info``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line, masked once more as a whole (exception texts included)."""
        fields: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line_fields = getattr(record, LINE_FIELDS, None)
        if line_fields is not None:
            fields.update(line_fields)  # a record that keeps its fields in one place
        else:
            for name, value in vars(record).items():
                if name not in _RECORD_ATTRS:
                    fields[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exc_info"] = record.exc_text
        if record.stack_info:
            fields["stack_info"] = self.formatStack(record.stack_info)
        line = orjson.dumps(fields, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        return _masked_line(record, line)


_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_LEVEL_COLOURS = {
    logging.DEBUG: "\x1b[34m",  # blue
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}


class ConsoleFormatter(logging.Formatter):
    """One line a record for a person: time, level, logger, message, then ``key=value`` fields.

    The extra fields (request id, method, route, path, status, duration...) follow in the order
    they were logged; empty ones are left out. Control characters are escaped, so a request
    path cannot move the cursor or fake a line; only a traceback keeps its line breaks. The
    finished text is masked like a JSON line before any colour is added.
    """

    def __init__(self, colour: bool = False) -> None:
        """``colour``: ANSI colours for the level (and a dim logger name)."""
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        """The line, and below it the traceback or stack when the record has one."""
        record.message = record.getMessage()
        stamp = time.strftime("%H:%M:%S", self.converter(record.created))
        stamp = f"{stamp}.{int(record.msecs):03d}"
        body = _escape(record.message)
        fields = " ".join(
            f"{name}={_field_value(value)}"
            for name, value in vars(record).items()
            if name not in _RECORD_ATTRS and value is not None
        )
        if fields:
            body = f"{body}  {fields}"
        trace = ""
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            trace += "\n" + record.exc_text
        if record.stack_info:
            trace += "\n" + self.formatStack(record.stack_info)
        body = _masked_line(record, body + _escape(trace, keep="\n"))
        level = f"{record.levelname:<8}"
        name = record.name
        if self.colour:
            code = _LEVEL_COLOURS.get(record.levelno, "")
            level = f"{code}{level}{_RESET}" if code else level
            name = f"{_DIM}{name}{_RESET}"
        return f"{stamp} {level} {name}  {body}"


def _escape(text: str, keep: str = "") -> str:
    """``text`` with every non-printable character but those in ``keep`` written as an escape."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or ch in keep else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def _field_value(value: Any) -> str:
    """A field's value: bare when it is one plain word, quoted like JSON otherwise."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float):
        return str(value)
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    if text and text.isprintable() and not any(ch in text for ch in ' "=\\'):
        return text
    return _escape(json.dumps(text, ensure_ascii=False))


class LogFormat(StrEnum):
    """How ``gateway dev`` writes logs: ``auto`` is ``console`` on a terminal, else ``json``."""

    AUTO = "auto"
    CONSOLE = "console"
    JSON = "json"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # no such method, or a closed stream
        return False


def resolve_log_format(choice: LogFormat | str, stream: TextIO | None = None) -> LogFormat:
    """``console`` or ``json``; ``auto`` is ``console`` only when ``stream`` (stdout) is a TTY."""
    chosen = LogFormat(choice)
    if chosen is not LogFormat.AUTO:
        return chosen
    terminal = _is_terminal(sys.stdout if stream is None else stream)
    return LogFormat.CONSOLE if terminal else LogFormat.JSON


def colour_wanted(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Colours for a terminal, unless ``NO_COLOR`` is set to anything (https://no-color.org)."""
    env = os.environ if environ is None else environ
    return not env.get("NO_COLOR") and _is_terminal(sys.stdout if stream is None else stream)


def uvicorn_log_config(
    level: str = "INFO", log_format: LogFormat | str = LogFormat.JSON
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn's ``log_config``: JSON lines on stdout.

    Every logger (the gateway's, uvicorn's, httpx's) propagates to one root handler carrying
    both filters; ``uvicorn.access`` is silenced (the gateway writes its own access line).
    ``log_format`` ``console`` (or ``auto`` on a terminal) writes :class:`ConsoleFormatter`
    lines instead, coloured as :func:`colour_wanted` says for stdout.
    """
    level = level.upper()
    chosen = resolve_log_format(log_format)
    if chosen is LogFormat.CONSOLE:
        formatter = {"()": f"{__name__}.ConsoleFormatter", "colour": colour_wanted()}
    else:
        formatter = {"()": f"{__name__}.JsonLineFormatter"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": f"{__name__}.RequestContextFilter"},
            "redact": {"()": f"{__name__}.RedactionFilter"},
        },
        "formatters": {chosen.value: formatter},
        "handlers": {
            "stdout": {
                "class": f"{__name__}.BackgroundLineWriter",
                "stream": "ext://sys.stdout",
                "formatter": chosen.value,
                "filters": ["context", "redact"],
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            # httpx logs every request line at INFO, alembic its plugins: kept for DEBUG
            "httpx": {"level": "WARNING" if level != "DEBUG" else "DEBUG"},
            "alembic.runtime.plugins": {"level": "WARNING" if level != "DEBUG" else "DEBUG"},
        },
    }


class BackgroundLineWriter(logging.Handler):
    """A handler that keeps the per-request lines off the event loop: a queue and a writer thread.

    Records of the loggers in ``queued`` (the access line, one per request) are formatted on
    the caller's thread (the request id and the masking belong to the request being served)
    and appended to a bounded queue; a daemon thread wakes every ``flush_interval_s``, writes
    everything queued in one ``write`` and flushes. A slow or stuck reader of stdout (a full
    pipe, a paused log shipper) therefore stalls only that thread, never the event loop. When
    ``max_pending`` lines are waiting, further access lines are dropped and counted, and the
    writer says how many in a WARNING line once it catches up.

    Every other record (start-up, shutdown, warnings, errors: a few, and the ones that matter
    when a process is about to end) is written at once, after whatever is queued, so that none
    is lost when the process is killed, and the order of lines is kept. ``flush()`` writes the
    queue now; the app's lifespan calls it at shutdown (:func:`flush_log_writers`).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        flush_interval_s: float = 0.05,
        max_pending: int = 20_000,
        queued: Iterable[str] = ("app.access",),
    ) -> None:
        """Write to ``stream`` (stdout when omitted, looked up when the handler is made)."""
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout
        self.queued = frozenset(queued)
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: deque[str] = deque()
        self._write_lock = threading.Lock()
        # apart from the write lock, which a writer stuck on stdout holds: the loop never waits
        self._dropped_lock = threading.Lock()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_pid = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the formatted line; a full queue drops it and counts the loss."""
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if record.name not in self.queued:
            self._write_now(line)
            return
        if len(self._pending) >= self.max_pending:
            with self._dropped_lock:  # += is a read and a write: the writer may reset between
                self.dropped += 1
            return
        self._pending.append(line)
        if self._writer_pid != os.getpid():
            self._start_writer()

    def _start_writer(self) -> None:
        # per process: a forked child inherits the handler but not the parent's thread
        with self._write_lock:
            if self._writer_pid == os.getpid():
                return
            self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._writer_pid = os.getpid()
            self._writer.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()

    def _write_now(self, line: str) -> None:
        """Write the queue, then ``line``, on the caller's thread."""
        self.flush(then=line)

    def flush(self, then: str | None = None) -> None:
        """Write every queued line now (and ``then``, after them)."""
        with self._write_lock:
            lines: list[str] = []
            try:
                while True:
                    lines.append(self._pending.popleft())
            except IndexError:
                pass
            with self._dropped_lock:
                dropped, self.dropped = self.dropped, 0
            if dropped:
                lines.append(self.format(_dropped_record(dropped)))
            if then is not None:
                lines.append(then)
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stdout closed under us: nothing left to tell the lines to

    def close(self) -> None:
        """Stop the writer thread after it wrote what is queued."""
        self._stop.set()
        writer = self._writer
        if writer is not None and writer.is_alive() and writer is not threading.current_thread():
            writer.join(timeout=2)
        self.flush()
        super().close()


def flush_log_writers() -> None:
    """Write what every :class:`BackgroundLineWriter` on the root logger has queued."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BackgroundLineWriter):
            handler.flush()


def _dropped_record(count: int) -> logging.LogRecord:
    return logging.LogRecord(
        "app.observability",
        logging.WARNING,
        __file__,
        0,
        "%d log lines dropped: the log output did not keep up",
        (count,),
        None,
    )


def json_handler(stream: Any = None) -> logging.Handler:
    """A stream handler writing masked JSON lines (for tests and embedding)."""
    return _filtered_handler(JsonLineFormatter(), stream)


def console_handler(stream: Any = None, *, colour: bool = False) -> logging.Handler:
    """A stream handler writing masked console lines, as ``gateway dev`` on a terminal does."""
    return _filtered_handler(ConsoleFormatter(colour), stream)


def _filtered_handler(formatter: logging.Formatter, stream: Any) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestContextFilter())
    handler.addFilter(RedactionFilter())
    return handler


def register_settings_secrets(settings: Settings) -> None:
    """Mask every secret ``settings`` hold: the client secret, session keys, service secrets."""
    values: list[str | None] = [key.get_secret_value() for key in settings.session.keys]
    values += [secret.get_secret_value() for secret in settings.introspection.clients.values()]
    if settings.auth0.client_secret is not None:
        values.append(settings.auth0.client_secret.get_secret_value())
    values.append(urlsplit(settings.database.url).password)
    register_secrets(values)
