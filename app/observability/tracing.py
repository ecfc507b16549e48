"""OpenTelemetry traces, off unless an OTLP endpoint is configured.

Configured the standard way, by the ``OTEL_*`` environment variables the SDK reads itself
(endpoint, headers, timeout, sampler, batch sizes, resource attributes, propagators). With no
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, nothing of
OpenTelemetry's SDK or instrumentations is imported and nothing is wrapped: the gateway runs
exactly as it does without them (docs/operations.md, Traces).

When on, one :class:`Tracing` per app owns a tracer provider with a batch processor and the
OTLP/HTTP exporter, and instruments what that app builds, and nothing global:

- the app: the maintained FastAPI instrumentation (one server span per request, the caller's
  ``traceparent`` honoured). FastAPI's own telemetry is switched off in
  :func:`app.main.create_app`, so a request never gets two server spans;
- the app's httpx client (Auth0, the Management API): a client span per call, ``traceparent``
  passed on (and only that: a caller's ``baggage`` is not, unless ``OTEL_PROPAGATORS`` asks);
- the app's SQLAlchemy engine: a span per statement (its SQL text, never its parameters);
- the cache of the request path (:class:`TracedCache`), and the gateway's own spans
  (:data:`SPAN_RESOLVE` and its siblings) through :attr:`Tracing.tracer`.

No secret reaches a span: :func:`scrub` (a span processor's start and the instrumentations'
request hooks) masks query strings in URLs and targets and any captured credential header.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from app.cache.base import Cache
from app.observability import logging as gateway_logging

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("app.observability.tracing")

SERVICE_NAME = "venue-gateway"
"""``service.name`` unless ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` names one."""

SPAN_RESOLVE = "gateway.resolve_token"
"""A bearer token resolved to a principal; ``gateway.cache.tier`` says which tier answered."""
SPAN_LOCAL_HIT = "gateway.cache.local"
"""The in-process tier answered (no ``await``: a span of a few microseconds)."""
SPAN_VALIDATE = "gateway.validate_token"
"""A cold validation: the JWT checked against the key set, revocation read, answer cached."""
SPAN_LOCK_WAIT = "gateway.lock_wait"
"""Another process validates this token: waiting for its answer in memcached."""
SPAN_FLIGHT_WAIT = "gateway.single_flight_wait"
"""Another request of this process does the same work: waiting for its answer."""
SPAN_REFRESH = "gateway.refresh_exchange"
"""A refresh token exchanged at Auth0 and the session's rotation stored."""


def span(
    tracer: Tracer | None, name: str, attributes: Mapping[str, str] | None = None
) -> AbstractContextManager[object]:
    """The current span ``name`` of ``tracer``; nothing at all when tracing is off (None)."""
    if tracer is None:
        return contextlib.nullcontext()
    return tracer.start_as_current_span(name, attributes=attributes)


TIER = "gateway.cache.tier"
"""Which tier answered a token: ``local``, ``memcached``, ``validation`` or ``single_flight``."""

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# probes and scrapes: a span each every few seconds says nothing an operator wants to see
_EXCLUDED_URLS = "/healthz$,/readyz$,/metrics$"
# attributes whose value may carry a query string (old and stable HTTP conventions)
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target")
_QUERY_ATTRIBUTES = ("url.query",)
_PATH_ATTRIBUTES = ("url.path",)
_SECRET_HEADERS = ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key")
REDACTED = "REDACTED"


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """True when the environment asks for traces: an OTLP endpoint set, the SDK not disabled."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in _ENDPOINTS)


class Tracing:
    """One app's tracer provider and the instrumentations of what the app builds."""

    def __init__(self, exporter: SpanExporter, *, batch: bool = True) -> None:
        """Export through ``exporter``: batched (production), or at each span's end (tests)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
        # the sampler comes from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
        self.provider: TracerProvider = TracerProvider(resource=resource)
        self.provider.add_span_processor(_scrubber())
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer("app")
        _propagate_trace_context_only()
        gateway_logging.trace_ids = trace_ids_reader()

    @classmethod
    def from_environment(cls) -> Tracing | None:
        """The OTLP/HTTP exporter the ``OTEL_*`` variables describe; None when tracing is off."""
        if not tracing_requested():
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracing = cls(OTLPSpanExporter())
        log.info("tracing on: OTLP/HTTP export, service.name=%s", tracing.service_name)
        return tracing

    @property
    def service_name(self) -> str:
        """The ``service.name`` the spans carry."""
        return str(self.provider.resource.attributes.get("service.name"))

    def instrument_app(self, app: FastAPI) -> None:
        """Server spans for ``app``'s requests, joining the caller's trace (``traceparent``)."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            # the gateway's own Prometheus metrics already count requests
            meter_provider=NoOpMeterProvider(),
            excluded_urls=_EXCLUDED_URLS,
            server_request_hook=scrub,
            # only when OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* asks for headers at all
            http_capture_headers_sanitize_fields=[*_SECRET_HEADERS, *_sanitized_from_env()],
            # two spans per request more (body read, response sent): noise, and a cost
            exclude_spans=["receive", "send"],
        )

    def instrument_http(self, client: httpx.AsyncClient) -> None:
        """Client spans for ``client``'s calls; ``traceparent`` goes with each."""
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        HTTPXClientInstrumentor.instrument_client(
            client,
            tracer_provider=self.provider,
            meter_provider=NoOpMeterProvider(),
            request_hook=_scrub_request,
        )

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """A span per statement ``engine`` runs: its SQL text, never its parameters."""
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.instrumentation.sqlalchemy.version import __version__
        from opentelemetry.metrics import NoOpMeterProvider

        # EngineTracer on this engine alone: SQLAlchemyInstrumentor().instrument() would also
        # patch create_engine for the whole process, every app and test after this one
        tracer = self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__)
        usage = NoOpMeterProvider().get_meter("sqlalchemy").create_up_down_counter("connections")
        EngineTracer(  # type: ignore[no-untyped-call]
            tracer, engine.sync_engine, usage, enable_commenter=False
        )

    def traced_cache(self, cache: Cache, system: str) -> Cache:
        """``cache`` with a client span around each operation; ``system``: ``memcached``..."""
        return TracedCache(cache, self.tracer, system)

    def flush(self) -> None:
        """Export what is buffered (the app stops; the provider stays usable)."""
        self.provider.force_flush()

    def shutdown(self) -> None:
        """Export what is buffered and stop the export thread."""
        self.provider.shutdown()


def _propagate_trace_context_only() -> None:
    """W3C trace context in and out, and nothing else, unless ``OTEL_PROPAGATORS`` says more.

    The SDK's default is ``tracecontext,baggage``: a caller's ``baggage`` header (any text it
    likes, an e-mail address, a session) would then go on verbatim with every call the gateway
    makes, to Auth0 first. A gateway at the edge does not pass untrusted baggage on. The
    propagator is the process's (the instrumentations read the global one); an operator who
    sets ``OTEL_PROPAGATORS`` gets exactly what it names, as the SDK reads it.
    """
    if os.environ.get("OTEL_PROPAGATORS", "").strip():
        return
    from opentelemetry.propagate import set_global_textmap
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    set_global_textmap(TraceContextTextMapPropagator())


def _sanitized_from_env() -> list[str]:
    names = os.environ.get("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "")
    return [name.strip() for name in names.split(",") if name.strip()]


def trace_ids_reader() -> Callable[[], tuple[str, str, bool] | None]:
    """A function giving the current span's trace and span ids (hex) and whether its trace is
    sampled; None when no span is current (:data:`app.observability.logging.trace_ids`).

    Unsampled requests have ids too (the caller's trace id, or one the gateway drew): a caller
    finds its request in the logs by the trace id it sent, sampled or not, and the flag says
    whether spans of it were exported. The server span ends as the response's last byte is
    sent, before the access line is written; it is still the current span.
    """
    # imported once here, not at each call: the access line asks on every request
    from opentelemetry.trace import get_current_span

    def current_trace_ids() -> tuple[str, str, bool] | None:
        context = get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return (
            format(context.trace_id, "032x"),
            format(context.span_id, "016x"),
            context.trace_flags.sampled,
        )

    return current_trace_ids


class TracedCache:
    """A :class:`~app.cache.base.Cache` with a client span around each operation.

    Spans are named ``memcached get`` and so on, with the operation and whether a read hit;
    never the key (a hash, but a hash of a token all the same).
    """

    def __init__(self, cache: Cache, tracer: Tracer, system: str) -> None:
        """Wrap ``cache`` (a ``system``: ``memcached``, ``memory``); spans go to ``tracer``."""
        from opentelemetry.trace import SpanKind

        self._cache = cache
        self._tracer = tracer
        self._kind = SpanKind.CLIENT
        self._system = system

    def _span(self, operation: str) -> Any:
        return self._tracer.start_as_current_span(
            f"{self._system} {operation}",
            kind=self._kind,
            attributes={"db.system.name": self._system, "db.operation.name": operation},
        )

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None."""
        with self._span("get") as span:
            value = await self._cache.get(key)
            span.set_attribute("gateway.cache.hit", value is not None)
            return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store ``value`` for ``ttl_s`` seconds."""
        with self._span("set"):
            return await self._cache.set(key, value, ttl_s)

    async def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store only if ``key`` is absent."""
        with self._span("add") as span:
            won = await self._cache.add(key, value, ttl_s)
            span.set_attribute("gateway.cache.added", won)
            return won

    async def delete(self, key: str) -> None:
        """Remove ``key``."""
        with self._span("delete"):
            await self._cache.delete(key)

    async def incr(self, key: str, delta: int = 1) -> int | None:
        """Atomic increment."""
        with self._span("incr"):
            return await self._cache.incr(key, delta)

    async def ping(self) -> bool:
        """True when the backend answers."""
        with self._span("ping"):
            return await self._cache.ping()

    async def close(self) -> None:
        """Release every connection."""
        await self._cache.close()


def _scrubbed_url(value: str) -> str:
    head, sep, _query = value.partition("?")
    return f"{head}?{REDACTED}" if sep else value


def _masked(attributes: Mapping[str, object]) -> dict[str, str]:
    """What to overwrite in ``attributes`` so that no query string or credential header stays."""
    masked: dict[str, str] = {}
    for name, value in attributes.items():
        if name in _URL_ATTRIBUTES and isinstance(value, str):
            # no query string; and the path masked as the access line masks it
            clean = gateway_logging.redact(_scrubbed_url(value))
            if clean != value:
                masked[name] = clean
        elif name in _PATH_ATTRIBUTES and isinstance(value, str):
            clean = gateway_logging.redact(value)
            if clean != value:
                masked[name] = clean
        elif (name in _QUERY_ATTRIBUTES and value != REDACTED) or (
            name.startswith(("http.request.header.", "http.response.header."))
            and name.rsplit(".", 1)[-1].replace("_", "-") in _SECRET_HEADERS
        ):
            masked[name] = REDACTED
    return masked


def _scrubber() -> SpanProcessor:
    """A span processor that masks what may carry a secret before any exporter sees it.

    It runs first, at a span's start (the request attributes the instrumentations start
    with); the FastAPI and httpx instrumentations set theirs once more after the start, so
    :func:`scrub` runs again as their request hook, the last thing before the request goes on.
    What it masks: a query string (``?access_token=...``) in a URL or target, the ``url.query``
    attribute, a credential header captured through ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_*``
    (the FastAPI instrumentation also masks those itself, response headers included). Paths
    keep their ids, which are no secret.
    """
    from opentelemetry.sdk.trace import SpanProcessor

    class Scrubber(SpanProcessor):
        def on_start(self, span: Span, parent_context: Any = None) -> None:
            scrub(span)

    return Scrubber()


async def _scrub_request(span: Any, _request: object) -> None:
    scrub(span)  # an AsyncClient's hooks are awaited


def scrub(span: Any, *_: object) -> None:
    """Mask what may carry a secret in ``span``'s attributes (also an instrumentation hook)."""
    masked = _masked(getattr(span, "attributes", None) or {})
    if masked:
        span.set_attributes(masked)
