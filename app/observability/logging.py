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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any
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


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn's ``log_config``: JSON lines on stdout.

    Every logger (the gateway's, uvicorn's, httpx's) propagates to one root handler carrying
    both filters; ``uvicorn.access`` is silenced (the gateway writes its own access line).
    """
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": f"{__name__}.RequestContextFilter"},
            "redact": {"()": f"{__name__}.RedactionFilter"},
        },
        "formatters": {"json": {"()": f"{__name__}.JsonLineFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
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
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
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
