"""Three replicas behind HAProxy over one PostgreSQL and a pool of three memcached: a session
moves freely between replicas, a lost memcached node and a rolling restart cost no request,
and single flight holds across replicas."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator

import httpx

from tests.e2e.conftest import ADMIN, VIEWER, bearer
from tests.e2e.test_token_validation import direct_token
from tests.observability.scrape import sample
from tests.topology.conftest import Topology

NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


async def login(client: httpx.AsyncClient, user: tuple[str, str] = VIEWER) -> str:
    response = await client.post("/auth/login", json={"username": user[0], "password": user[1]})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


class Load:
    """``GET /auth/me`` with every token in turn, from ``workers`` concurrent clients, until
    stopped; every answer (or transport error) is recorded."""

    def __init__(self, url: str, tokens: list[str], workers: int = 6) -> None:
        self.url = url
        self.tokens = tokens
        self.workers = workers
        self.statuses: Counter[int | str] = Counter()
        self._stop = asyncio.Event()

    async def _run(self, offset: int) -> None:
        async with httpx.AsyncClient(base_url=self.url, limits=NO_KEEPALIVE, timeout=15) as client:
            i = offset
            while not self._stop.is_set():
                token = self.tokens[i % len(self.tokens)]
                i += 1
                try:
                    response = await client.get("/auth/me", headers=bearer(token))
                except httpx.HTTPError as exc:
                    self.statuses[type(exc).__name__] += 1
                    continue
                self.statuses[response.status_code] += 1

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Load]:
        tasks = [asyncio.create_task(self._run(i)) for i in range(self.workers)]
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)

    async def until_answered(self, count: int, timeout_s: float = 30) -> None:
        """Wait until ``count`` more requests have been answered."""
        target = self.statuses.total() + count
        deadline = time.monotonic() + timeout_s
        while self.statuses.total() < target:
            assert time.monotonic() < deadline, self.statuses
            await asyncio.sleep(0.05)


async def test_a_session_moves_between_replicas(topology: Topology) -> None:
    r1, r2, r3 = (httpx.AsyncClient(base_url=replica.url) for replica in topology.replicas)
    async with r1, r2, r3:
        token = await login(r1)
        assert (await r2.get("/auth/me", headers=bearer(token))).status_code == 200

        refreshed = await r3.post("/auth/refresh", headers=bearer(token))
        assert refreshed.status_code == 200, refreshed.text
        assert "refresh_token" not in refreshed.json()
        new = refreshed.json()["access_token"]
        assert (await r1.get("/auth/me", headers=bearer(new))).status_code == 200

        assert (await r2.post("/auth/logout", headers=bearer(new))).status_code == 204
        # PostgreSQL's NOTIFY reaches the other replicas at once; allow the sync interval
        deadline = time.monotonic() + 5
        for client in (r1, r2, r3):
            while (await client.get("/auth/me", headers=bearer(new))).status_code != 401:
                assert time.monotonic() < deadline, "a logged-out token is still served"
                await asyncio.sleep(0.05)
        again = await r3.post("/auth/refresh", headers=bearer(new))
        assert again.status_code == 401


async def test_single_flight_holds_across_replicas(topology: Topology) -> None:
    async def scrape_each() -> list[str]:
        texts = []
        for replica in topology.replicas:
            async with httpx.AsyncClient(base_url=replica.url) as client:
                texts.append((await client.get("/metrics")).text)
        return texts

    route = {"route": "/auth/me", "method": "GET", "status": "200"}
    # tokens no replica has seen (a login through the gateway caches its principal at once)
    async with httpx.AsyncClient(base_url=topology.emulator.url) as emulator:
        tokens = [await direct_token(emulator, user) for user in (VIEWER, ADMIN)]
    async with httpx.AsyncClient(base_url=topology.haproxy.url, limits=NO_KEEPALIVE) as client:
        before = await scrape_each()
        responses = await asyncio.gather(
            *(client.get("/auth/me", headers=bearer(tokens[i % 2])) for i in range(90))
        )
    assert {response.status_code for response in responses} == {200}
    after = await scrape_each()

    served = [
        sample(a, "gateway_http_requests_total", **route)
        - sample(b, "gateway_http_requests_total", **route)
        for a, b in zip(after, before, strict=True)
    ]
    assert sum(served) == 90
    assert all(count > 0 for count in served), f"HAProxy spread: {served}"
    validations = [
        sample(a, "gateway_token_validations_total") - sample(b, "gateway_token_validations_total")
        for a, b in zip(after, before, strict=True)
    ]
    # at most one validation per token per replica (and in practice one in all, the others
    # waiting on its memcached lock); never one per request
    assert all(count <= len(tokens) for count in validations), validations
    assert 1 <= sum(validations) <= len(tokens) * len(topology.replicas)


async def test_a_memcached_node_lost_under_load_costs_nothing(topology: Topology) -> None:
    async with httpx.AsyncClient(base_url=topology.haproxy.url) as client:
        tokens = [await login(client, user) for user in (VIEWER, ADMIN, VIEWER, ADMIN)]

    lost = topology.memcached[1]
    load = Load(topology.haproxy.url, tokens)
    try:
        async with load.running():
            await load.until_answered(100)
            lost.stop()
            # long enough for every replica's local tier (5 s) to need the shared tier again
            await asyncio.sleep(6)
            await load.until_answered(100)
    finally:
        lost.start()
    assert set(load.statuses) == {200}, load.statuses

    # no session was lost: every one still refreshes, through any replica
    async with httpx.AsyncClient(base_url=topology.haproxy.url, limits=NO_KEEPALIVE) as client:
        for token in tokens:
            response = await client.post("/auth/refresh", headers=bearer(token))
            assert response.status_code == 200, response.text
        # and the lost node comes back into service on every replica (its breaker's probe)
        node = f"127.0.0.1:{lost.port}"
        for replica in topology.replicas:
            deadline = time.monotonic() + 10
            while True:
                ready = (await client.get(f"{replica.url}/readyz")).json()
                if ready["components"]["cache"]["nodes"][node]["ok"]:
                    break
                assert time.monotonic() < deadline, ready
                await asyncio.sleep(0.2)


async def test_a_rolling_restart_under_load_fails_no_request(topology: Topology) -> None:
    haproxy = topology.haproxy
    async with httpx.AsyncClient(base_url=haproxy.url) as client:
        tokens = [await login(client, user) for user in (VIEWER, ADMIN)]

    load = Load(haproxy.url, tokens)
    async with load.running():
        await load.until_answered(50)
        for replica in topology.replicas:
            # drain: no new requests go to it; those it has finish; then SIGTERM
            haproxy.command(f"set server replicas/{replica.name} state drain")
            deadline = time.monotonic() + 10
            while haproxy.servers()[replica.name]["scur"] != "0":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            # uvicorn stops gracefully, then re-raises the signal: it exits "killed by SIGTERM"
            assert await asyncio.to_thread(replica.stop) in {0, -signal.SIGTERM}
            await load.until_answered(30)  # served by the other two meanwhile

            await asyncio.to_thread(replica.start)
            haproxy.command(f"set server replicas/{replica.name} state ready")
            await asyncio.to_thread(haproxy.wait_for_status, replica.name, "UP")
            await load.until_answered(30)
    assert set(load.statuses) == {200}, load.statuses
    assert load.statuses[200] >= 230
