"""The gateway's Prometheus metrics, one :class:`Metrics` per app.

Every app owns its metrics: in one process (tests, ``gateway dev``, a single worker) they live
in a private :class:`~prometheus_client.CollectorRegistry`, so apps never collide on names and
tests read exact numbers. Under ``gateway serve --workers N`` each worker writes its values to
the directory named by ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums every worker's files
(:class:`~prometheus_client.multiprocess.MultiProcessCollector`), whichever worker answers.
prometheus-client picks its value store when it is first imported, so that variable must be set
before the workers start; ``gateway serve`` does it.

Hot paths get children bound to their labels once (``local_lookups.hit``), so counting costs an
``inc()`` and no label lookup.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import Concatenate, NamedTuple, ParamSpec, Protocol, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from app.http.errors import GatewayError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable naming the directory shared by the workers' metric files."""

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :meth:`Metrics.render`'s output (Prometheus text format)."""

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
AUTH0_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LookupCounters(NamedTuple):
    """The three outcomes of a token-cache lookup in one tier, bound once."""

    hit: Counter
    miss: Counter
    error: Counter


class Metrics:
    """Every metric of one gateway app."""

    def __init__(self, *, shared_tier: str = "memcached", multiprocess_dir: str | None = None):
        """Metrics in a private registry, or in ``multiprocess_dir`` shared by the workers.

        ``shared_tier`` labels the shared cache tier: ``memcached``, or ``memory`` for
        ``memory://``.
        """
        self.multiprocess_dir = multiprocess_dir
        registry = None if multiprocess_dir else CollectorRegistry()
        if registry is not None:
            ProcessCollector(registry=registry)
        self._registry = registry

        self.http_requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.http_duration = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ("route", "method"),
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.token_cache_lookups = Counter(
            "gateway_token_cache_lookups",
            "Principal lookups by access-token hash, by cache tier and outcome.",
            ("tier", "outcome"),
            registry=registry,
        )
        self.token_validations = Counter(
            "gateway_token_validations",
            "Access tokens validated afresh (signature, claims, revocation), after every cache "
            "tier missed and single flight found no validation of the token in flight.",
            registry=registry,
        )
        self.auth0_requests = Counter(
            "gateway_auth0_requests",
            "Calls to Auth0, by endpoint and outcome (ok or the error code answered).",
            ("endpoint", "outcome"),
            registry=registry,
        )
        self.auth0_duration = Histogram(
            "gateway_auth0_request_duration_seconds",
            "Time of a call to Auth0, by endpoint.",
            ("endpoint",),
            buckets=AUTH0_BUCKETS,
            registry=registry,
        )
        self.coalesced_waits = Counter(
            "gateway_coalesced_waits",
            "Callers that waited for work already in flight instead of repeating it.",
            ("flight",),
            registry=registry,
        )
        self.auth_operations = Counter(
            "gateway_auth_operations",
            "Logins, refreshes and logouts, by outcome (ok or the error code answered).",
            ("operation", "outcome"),
            registry=registry,
        )

        self.cache_entries_rejected = Counter(
            "gateway_cache_entries_rejected",
            "Shared-cache entries ignored because their authentication check failed "
            "(written by someone else, moved to another key, or sealed with retired keys).",
            registry=registry,
        )

        self.cache_breaker_open = Gauge(
            "gateway_cache_breaker_open",
            "1 while the circuit breaker of a memcached node is open (operations answered as "
            "misses at once), else 0; across workers, 1 when any worker's is open.",
            ("node",),
            multiprocess_mode="max",
            registry=registry,
        )
        self.cache_short_circuits = Counter(
            "gateway_cache_breaker_short_circuits",
            "memcached operations answered as failures at once because the node's circuit "
            "breaker was open.",
            ("node",),
            registry=registry,
        )

        self.cache_operations = Counter(
            "gateway_cache_operations",
            "memcached operations by node (host:port) and outcome: ok (answered, a miss "
            "included) or error (failed, timed out or short-circuited).",
            ("node", "outcome"),
            registry=registry,
        )

        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._cache_operation_children: dict[tuple[str, bool], Counter] = {}
        self.local_lookups = _lookups(self.token_cache_lookups, "local")
        self.shared_lookups = _lookups(self.token_cache_lookups, shared_tier)
        self.validation_waits = self.coalesced_waits.labels("validation")
        self.validation_lock_waits = self.coalesced_waits.labels("validation_lock")
        self.refresh_waits = self.coalesced_waits.labels("refresh")
        self.refresh_lock_waits = self.coalesced_waits.labels("refresh_lock")

    @classmethod
    def from_environment(cls, *, cache_backend: str) -> Metrics:
        """The metrics of an app about to serve: multi-process when the variable is set."""
        return cls(
            shared_tier=cache_backend, multiprocess_dir=os.environ.get(MULTIPROC_ENV) or None
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request and its latency."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            # bounded: route templates x methods x statuses (unknown paths share one label)
            children = (
                self.http_requests.labels(route, method, str(status)),
                self.http_duration.labels(route, method),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_auth0_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        """The ``on_call`` hook of :class:`app.clients.auth0.Auth0AuthClient`."""
        self.auth0_requests.labels(endpoint, outcome).inc()
        self.auth0_duration.labels(endpoint).observe(seconds)

    def count_auth_operation(self, operation: str, outcome: str) -> None:
        """Count one login, refresh or logout with its outcome."""
        self.auth_operations.labels(operation, outcome).inc()

    def observe_cache_breaker(self, node: str, is_open: bool) -> None:
        """The circuit breaker of memcached ``node`` (``host:port``) opened or closed."""
        self.cache_breaker_open.labels(node).set(1 if is_open else 0)

    def count_cache_short_circuit(self, node: str) -> None:
        """One operation on memcached ``node`` answered as a failure without being tried."""
        self.cache_short_circuits.labels(node).inc()

    def count_cache_operation(self, node: str, failed: bool) -> None:
        """One operation on memcached ``node`` answered or failed."""
        child = self._cache_operation_children.get((node, failed))
        if child is None:
            child = self.cache_operations.labels(node, "error" if failed else "ok")
            self._cache_operation_children[(node, failed)] = child
        child.inc()

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (all workers' in multi-process mode)."""
        if self.multiprocess_dir is None:
            assert self._registry is not None  # noqa: S101 - set together in __init__
            return generate_latest(self._registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def _lookups(counter: Counter, tier: str) -> LookupCounters:
    return LookupCounters(
        counter.labels(tier, "hit"), counter.labels(tier, "miss"), counter.labels(tier, "error")
    )


class _Observed(Protocol):
    metrics: Metrics


_S = TypeVar("_S", bound=_Observed)
_P = ParamSpec("_P")
_T = TypeVar("_T")


def counted(
    operation: str,
) -> Callable[
    [Callable[Concatenate[_S, _P], Awaitable[_T]]], Callable[Concatenate[_S, _P], Awaitable[_T]]
]:
    """Count every call of an async method in ``auth_operations`` under ``operation``.

    The outcome is ``ok``, the :class:`~app.http.errors.GatewayError` code raised, or
    ``server_error`` for anything else; the method's object holds the :class:`Metrics`.
    """

    def decorate(
        method: Callable[Concatenate[_S, _P], Awaitable[_T]],
    ) -> Callable[Concatenate[_S, _P], Awaitable[_T]]:
        @functools.wraps(method)
        async def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
            try:
                result = await method(self, *args, **kwargs)
            except GatewayError as exc:
                self.metrics.count_auth_operation(operation, exc.code)
                raise
            except Exception:
                self.metrics.count_auth_operation(operation, "server_error")
                raise
            self.metrics.count_auth_operation(operation, "ok")
            return result

        return wrapper

    return decorate
