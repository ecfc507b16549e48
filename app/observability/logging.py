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

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, TextIO
from urllib.parse import urlsplit

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from settings import Settings

MASK = "[REDACTED]"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being served in this task (set by the middleware)."""

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
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class RedactionFilter(logging.Filter):
    """Masks credentials in a record's message and extra fields; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; always True."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = None  # a malformed call: the formatter reports it through handleError
        if message is not None:
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, None
        for name, value in list(vars(record).items()):
            if name in _RECORD_ATTRS:
                continue
            if name.lower() in _SENSITIVE_KEYS:
                setattr(record, name, MASK)
            elif isinstance(value, str):
                setattr(record, name, redact(value))
        return True


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the current request id (unless the record has one); always True."""
        request_id = request_id_var.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object a line: timestamp, level, logger, message, pid, then extra fields."""

    def __init__(self) -> None:
        """Fixed fields; the extra fields of a record follow them."""
        super().__init__(
            "%(levelname)s %(name)s %(message)s %(process)d",
            rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
            # uvicorn's colour copy of its message: terminal escapes, no information
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            timestamp=True,
        )

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line, masked once more as a whole (exception texts included)."""
        return redact(super().format(record))


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
            if name not in _RECORD_ATTRS and name != "color_message" and value is not None
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
        body = redact(body + _escape(trace, keep="\n"))
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
                "class": "logging.StreamHandler",
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
