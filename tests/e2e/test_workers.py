"""Two gateway worker processes behind one port share memcached and the database: one
validation per token, and a logout on one worker holds on the other."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningEmulator
from tests.e2e.conftest import VIEWER, bearer, emulator_stats
from tests.e2e.test_token_validation import direct_token
from tests.servers import MemcachedProcess, free_port, wait_for_port


@pytest.fixture
def two_workers(
    emulator: RunningEmulator, memcached_server: MemcachedProcess, tmp_path: Path
) -> Iterator[str]:
    """``gateway serve --workers 2`` as real processes; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_ENV": "local",
        "GATEWAY_AUTH0__DOMAIN": emulator.url,
        "GATEWAY_CACHE__URL": memcached_server.url,
        "GATEWAY_CACHE__NAMESPACE": f"w-{uuid.uuid4().hex[:8]}",
        "GATEWAY_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'venues.db'}",
        "GATEWAY_CACHE__LOCAL_TTL_S": "1",
    }
    proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout_s=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_fifty_concurrent_first_requests_across_two_workers(
    two_workers: str, emulator_http: httpx.AsyncClient
) -> None:
    token = await direct_token(emulator_http)
    async with httpx.AsyncClient(
        base_url=two_workers, limits=httpx.Limits(max_connections=50)
    ) as client:
        # both workers must be up before the burst (the port opens with the first one)
        for _ in range(100):
            if (await client.get("/healthz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        await emulator_http.post("/__emulator/stats/reset")
        responses = await asyncio.gather(
            *(client.get("/auth/me", headers=bearer(token)) for _ in range(50))
        )
    assert {r.status_code for r in responses} == {200}
    requests = (await emulator_stats(emulator_http))["requests"]
    assert requests.get("GET /userinfo", 0) <= 1


async def test_a_logout_holds_on_both_workers(two_workers: str) -> None:
    async with httpx.AsyncClient(base_url=two_workers) as client:
        for _ in range(100):
            if (await client.get("/healthz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        credentials = {"username": VIEWER[0], "password": VIEWER[1]}
        response = await client.post("/auth/login", json=credentials)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]

    async def burst() -> set[int]:
        # fresh connections, so both workers get some of the requests
        async def one() -> int:
            async with httpx.AsyncClient(base_url=two_workers) as fresh:
                return (await fresh.get("/auth/me", headers=bearer(token))).status_code

        return set(await asyncio.gather(*(one() for _ in range(20))))

    assert await burst() == {200}
    async with httpx.AsyncClient(base_url=two_workers) as client:
        assert (await client.post("/auth/logout", headers=bearer(token))).status_code == 204
    await asyncio.sleep(1.5)  # GATEWAY_CACHE__LOCAL_TTL_S and a revocation sync
    assert await burst() == {401}
