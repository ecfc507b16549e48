"""``gateway serve --workers 2`` as real processes: metrics summed over the workers, JSON lines
on stdout, a graceful stop that lets a request in flight finish, and the connection limits of
``GATEWAY_SERVER__*`` in every worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import RunningEmulator
from tests.e2e.conftest import VIEWER, bearer
from tests.observability.scrape import sample
from tests.servers import MemcachedProcess, free_port, wait_for_port

WORKERS = 2
MAX_HEADER_COUNT = 40


@dataclass
class Served:
    """A running ``gateway serve``."""

    proc: subprocess.Popen[bytes]
    url: str
    stdout: Path
    tmp: Path

    def lines(self) -> list[dict[str, Any]]:
        """Every stdout line, each parsed as one JSON object."""
        text = self.stdout.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def pids_serving(self, route: str) -> set[int]:
        """The worker processes that logged an access line for ``route``."""
        return {
            line["pid"]
            for line in self.lines()
            if line["logger"] == "app.access" and line["route"] == route
        }

    def wait_for(self, message: str, count: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(line["message"] == message for line in self.lines()) >= count:
                return
            assert self.proc.poll() is None, self.stdout.read_text()
            time.sleep(0.05)
        raise TimeoutError(f"{message!r} x{count} not logged: {self.stdout.read_text()}")


@pytest.fixture
def served(
    emulator: RunningEmulator, memcached_server: MemcachedProcess, tmp_path: Path
) -> Iterator[Served]:
    port = free_port()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    stdout = tmp_path / "stdout.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PROMETHEUS_"))},
        "TMPDIR": str(tmp),
        "GATEWAY_ENV": "local",
        "GATEWAY_AUTH0__DOMAIN": emulator.url,
        "GATEWAY_CACHE__URL": memcached_server.url,
        "GATEWAY_CACHE__NAMESPACE": f"s-{uuid.uuid4().hex[:8]}",
        "GATEWAY_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'venues.db'}",
        "GATEWAY_SESSION__KEYS": Fernet.generate_key().decode(),
        "GATEWAY_GRACEFUL_TIMEOUT_S": "10",
        "GATEWAY_SERVER__MAX_HEADER_COUNT": str(MAX_HEADER_COUNT),
    }
    with stdout.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv
            [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(WORKERS)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Served(proc, f"http://127.0.0.1:{port}", stdout, tmp)
    try:
        wait_for_port(port, timeout_s=30)
        running.wait_for("Application startup complete.", WORKERS)
        yield running
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)


async def login(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]})


async def test_workers_share_one_metrics_view(served: Served) -> None:
    # no keep-alive: every request is a new connection, which either worker may accept; the
    # kernel decides which, so batches go on until both workers have answered some
    limits = httpx.Limits(max_keepalive_connections=0)
    sent = 0
    async with httpx.AsyncClient(base_url=served.url, limits=limits) as client:
        token = (await login(client)).json()["access_token"]
        for _ in range(20):
            responses = await asyncio.gather(
                *(client.get("/auth/me", headers=bearer(token)) for _ in range(20))
            )
            assert {response.status_code for response in responses} == {200}
            sent += len(responses)
            if len(served.pids_serving("/auth/me")) == WORKERS:
                break
        assert len(served.pids_serving("/auth/me")) == WORKERS
        scrapes = [(await client.get("/metrics")).text for _ in range(6)]

    route = {"route": "/auth/me", "method": "GET", "status": "200"}
    # whichever worker answers the scrape, it counts every worker's requests
    counts = [sample(text, "gateway_http_requests_total", **route) for text in scrapes]
    assert counts == [sent] * len(scrapes)
    assert len(list(served.tmp.glob("gateway-metrics-*"))) == 1


async def test_graceful_stop_finishes_the_request_in_flight(
    served: Served, emulator_http: httpx.AsyncClient
) -> None:
    fault = {"path": "/oauth/token", "status": None, "delay_ms": 1500}
    assert (await emulator_http.post("/__emulator/faults", json=fault)).status_code < 300
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        in_flight = asyncio.create_task(login(client))
        await asyncio.sleep(0.5)
        served.proc.send_signal(signal.SIGTERM)
        response = await in_flight
    assert response.status_code == 200
    assert served.proc.wait(timeout=20) == 0
    messages = [line["message"] for line in served.lines()]
    assert messages.count("Application shutdown complete.") == WORKERS
    assert not list(served.tmp.glob("gateway-metrics-*")), "the metrics directory is left"


async def test_every_worker_applies_the_configured_header_limit(served: Served) -> None:
    # no keep-alive: each request is a new connection, which either worker may take
    limits = httpx.Limits(max_keepalive_connections=0)
    many = {f"x-line-{i}": "v" for i in range(MAX_HEADER_COUNT + 5)}
    few = {f"x-line-{i}": "v" for i in range(MAX_HEADER_COUNT - 10)}
    async with httpx.AsyncClient(base_url=served.url, limits=limits) as client:
        refused = [(await client.get("/healthz", headers=many)) for _ in range(10)]
        accepted = [(await client.get("/healthz", headers=few)) for _ in range(10)]
    assert {response.status_code for response in refused} == {431}
    assert refused[0].json()["error"] == "request_header_too_large"
    assert {response.status_code for response in accepted} == {200}
