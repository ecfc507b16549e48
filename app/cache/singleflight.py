"""Single flight: concurrent callers asking for the same key share one in-flight call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Coalesce concurrent calls per key into one; every caller gets its result or exception.

    The shared call runs as its own task, so a caller that goes away (a client disconnecting)
    cancels only its own wait, never the call the others are waiting for. ``waits`` counts
    callers that joined a call already in flight; ``on_wait`` (a metric) is told of each;
    with a ``tracer`` (tracing on), each such wait is a span.
    """

    def __init__(
        self, on_wait: Callable[[], object] | None = None, *, tracer: Tracer | None = None
    ) -> None:
        self._inflight: dict[str, asyncio.Task[T]] = {}
        self._on_wait = on_wait
        self._tracer = tracer
        self.waits = 0

    async def run(self, key: str, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``call`` unless a call for ``key`` is in flight; then await that one instead."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(call())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finish(key, done))
        else:
            self.waits += 1
            if self._on_wait is not None:
                self._on_wait()
            if self._tracer is not None:
                from app.observability.tracing import SPAN_FLIGHT_WAIT

                with self._tracer.start_as_current_span(SPAN_FLIGHT_WAIT):
                    return await asyncio.shield(task)
        return await asyncio.shield(task)

    def _finish(self, key: str, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is not reported twice

    def __contains__(self, key: object) -> bool:
        """True when a call for ``key`` is in flight (a caller now would join it)."""
        return key in self._inflight

    def __len__(self) -> int:
        return len(self._inflight)
