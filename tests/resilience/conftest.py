"""The resilience suite: the end-to-end fixtures, bounded background load, memcached stats.

Every module here sets ``pytestmark = pytest.mark.resilience``: ``pytest -m resilience`` runs
the suite alone (with ``tests/e2e/test_failures.py``, which carries the marker too).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from tests.e2e.conftest import (  # noqa: F401 - the end-to-end fixtures, used here too
    emulator_http,
    gateway,
    gateway_factory,
    no_token_leaks,
    recorder,
)


@dataclass
class Outcome:
    """One request of a load loop: what was asked, the answer, how long it took."""

    tag: str
    status: int
    seconds: float
    retry_after: str | None = None


@dataclass
class Load:
    """What a set of concurrent request loops saw, by phase."""

    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    phase: str = "start"

    def record(self, outcome: Outcome) -> None:
        """Keep ``outcome`` under the current phase."""
        self.outcomes.setdefault(self.phase, []).append(outcome)

    def statuses(self, phase: str | None = None) -> Counter[int]:
        """How often each status was answered (in one phase, or in all)."""
        phases = [phase] if phase is not None else list(self.outcomes)
        return Counter(o.status for p in phases for o in self.outcomes.get(p, []))

    def all(self) -> list[Outcome]:
        """Every outcome of every phase."""
        return [o for outcomes in self.outcomes.values() for o in outcomes]


Request = Callable[[int], Awaitable[tuple[str, httpx.Response]]]


async def run_load(
    request: Request,
    *,
    loops: int,
    phases: list[tuple[str, float, Callable[[], Awaitable[None]] | None]],
) -> Load:
    """Run ``loops`` concurrent request loops through ``phases`` (name, seconds, action at start).

    ``request(i)`` makes the i-th request of a loop and returns a tag and the response. Bounded:
    every loop stops when the last phase ends; a request cut off by the end is not recorded.
    """
    load = Load()
    done = asyncio.Event()

    async def loop(number: int) -> None:
        i = number
        while not done.is_set():
            started = time.perf_counter()
            tag, response = await request(i)
            load.record(
                Outcome(
                    tag,
                    response.status_code,
                    time.perf_counter() - started,
                    response.headers.get("retry-after"),
                )
            )
            i += loops
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(loop(n)) for n in range(loops)]
    try:
        for name, seconds, action in phases:
            load.phase = name
            if action is not None:
                await action()
            await asyncio.sleep(seconds)
    finally:
        done.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)
    for task in tasks:
        error = task.exception()
        if error is not None:
            raise error
    return load
