"""memcached killed and restarted while requests keep coming.

``tests/e2e/test_failures.py`` stops memcached between single requests; here it dies under 16
concurrent request loops, with the in-process tier off so that every request needs memcached,
and with new tokens arriving all the time (validated while memcached is gone).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import RunningEmulator
from tests.e2e.conftest import ADMIN, VIEWER, bearer, emulator_stats, login
from tests.e2e.test_token_validation import direct_token, forged
from tests.resilience.conftest import run_load
from tests.servers import MemcachedProcess, memcached_stats

pytestmark = pytest.mark.resilience

LOOPS = 16


async def test_killed_and_restarted_under_load(
    gateway_factory: Callable[..., Any],
    memcached: MemcachedProcess,
    emulator: RunningEmulator,
    emulator_http: httpx.AsyncClient,
) -> None:
    client, _ = await gateway_factory(
        cache_url=memcached.url, cache={"local_ttl_s": 0, "timeout_s": 0.2}
    )
    known = [
        await login(client, VIEWER),  # sessions kept by the gateway
        await login(client, ADMIN),
        await direct_token(emulator_http),  # a token an SPA got on its own
    ]
    now = int(time.time())

    async def request(i: int) -> tuple[str, httpx.Response]:
        if i % 5 == 0:  # a token never seen before, valid: validated in whatever state
            token, tag = forged(emulator, iat=now - i), "new"
        else:
            token, tag = known[i % len(known)], "known"
        return tag, await client.get("/auth/me", headers=bearer(token))

    async def kill() -> None:
        await asyncio.to_thread(memcached.stop)
        await emulator_http.post("/__emulator/stats/reset")

    async def restart() -> None:
        await asyncio.to_thread(memcached.start)

    load = await run_load(
        request,
        loops=LOOPS,
        phases=[("up", 0.5, None), ("down", 1.0, kill), ("restarted", 1.5, restart)],
    )

    for phase in ("up", "down", "restarted"):
        assert len(load.outcomes.get(phase, [])) >= 2 * LOOPS, f"too little load while {phase}"
    refused = [o for o in load.all() if o.status != 200]
    assert not refused, f"valid tokens must get 200 throughout: {load.statuses()}"
    slowest = max(o.seconds for o in load.outcomes["down"])
    assert slowest < 1.0, f"a request waited {slowest:.2f}s on the dead memcached"
    hits = memcached_stats(memcached.port)["get_hits"]
    assert hits > 0, "the restarted memcached must serve principals again"
    # validation while memcached was down asked Auth0 at most for profiles, never per request
    userinfo = (await emulator_stats(emulator_http))["requests"].get("GET /userinfo", 0)
    assert userinfo <= len(load.outcomes["down"]) // 10
