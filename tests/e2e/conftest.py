"""End-to-end fixtures: the gateway app over a real memcached and the emulator as a real server."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.auth.cipher import generate_key
from app.main import create_app
from app.observability.tracing import Tracing
from settings import Environment, Settings
from tests.conftest import RunningEmulator
from tests.servers import MemcachedProcess

ADMIN = ("admin@venues.local", "Admin-Passw0rd!")
VIEWER = ("viewer@venues.local", "Viewer-Passw0rd!")
INTROSPECT_SECRET = "introspect-secret-of-the-venue-service"


def gateway_settings(
    emulator: RunningEmulator, cache_url: str, *, database_url: str | None = None, **overrides: Any
) -> Settings:
    """Local settings pointing at ``emulator`` and ``cache_url``, namespaced per test."""
    data: dict[str, Any] = {
        "env": Environment.LOCAL,
        "auth0": {"domain": emulator.url, "timeout_s": 2.0},
        "cache": {"url": cache_url, "namespace": f"t-{uuid.uuid4().hex[:8]}"},
        "introspection": {"clients": {"venue-service": INTROSPECT_SECRET}},
    }
    if database_url is not None:
        data["database"] = {"url": database_url}
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return Settings(**data)


class Recorder:
    """Every response the gateway gave in a test: status, headers and body."""

    def __init__(self) -> None:
        self.responses: list[tuple[int, str, str]] = []

    async def __call__(self, response: httpx.Response) -> None:
        body = (await response.aread()).decode(errors="replace")
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.responses.append((response.status_code, headers, body))

    def access_tokens(self) -> list[str]:
        """Access tokens the gateway handed out."""
        tokens = []
        for _, _, body in self.responses:
            if '"access_token"' in body:
                tokens.append(json.loads(body)["access_token"])
        return tokens


@pytest.fixture
def recorder() -> Recorder:
    """Records the gateway's responses for the leak checks."""
    return Recorder()


@pytest.fixture(autouse=True)
def no_token_leaks(
    emulator: RunningEmulator, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """After every end-to-end test: no refresh token the emulator issued in any response,
    header or log line, and no access token in any log line."""
    caplog.set_level(logging.DEBUG)
    yield
    refresh_tokens = list(emulator.tenant.refresh_tokens)
    log_lines = [record.getMessage() for record in caplog.records]
    log_lines += [str(record.args) for record in caplog.records if record.args]
    log_lines += [record.exc_text or "" for record in caplog.records]
    for secret in refresh_tokens:
        for status, headers, body in recorder.responses:
            assert secret not in body, f"refresh token in a {status} response body"
            assert secret not in headers, f"refresh token in a {status} response header"
        assert not any(secret in line for line in log_lines), "refresh token in a log line"
    for token in recorder.access_tokens():
        assert not any(token in line for line in log_lines), "access token in a log line"


@pytest.fixture
async def gateway_factory(
    emulator: RunningEmulator,
    memcached_server: MemcachedProcess,
    recorder: Recorder,
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Any]]:
    """Start gateway apps (in-process ASGI, with their lifespan) against the emulator.

    Their database is an SQLite file of the test's own unless ``database`` says otherwise; they
    share one session key unless ``session`` says otherwise; ``tracing`` is where their spans
    go (none by default).
    """
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'venues.db'}"
    # the instances of one test are one deployment: they share the session keys
    session = {"keys": [generate_key()]}
    async with AsyncExitStack() as stack:

        async def factory(
            cache_url: str | None = None, *, tracing: Tracing | None = None, **overrides: Any
        ) -> tuple[httpx.AsyncClient, Settings]:
            overrides.setdefault("session", session)
            settings = gateway_settings(
                emulator,
                cache_url or memcached_server.url,
                database_url=database_url,
                **overrides,
            )
            app = create_app(settings, tracing=tracing)
            manager = await stack.enter_async_context(LifespanManager(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=manager.app),
                    base_url="http://gateway",
                    event_hooks={"response": [recorder]},
                )
            )
            return client, settings

        yield factory


@pytest.fixture
async def gateway(gateway_factory: Callable[..., Any]) -> httpx.AsyncClient:
    """A gateway on the session memcached."""
    client, _ = await gateway_factory()
    assert isinstance(client, httpx.AsyncClient)
    return client


@pytest.fixture
async def emulator_http(emulator: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for the emulator (control routes, direct token grants)."""
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        yield client


async def login(gateway: httpx.AsyncClient, user: tuple[str, str] = VIEWER) -> str:
    """Log in through the gateway and return the access token."""
    response = await gateway.post("/auth/login", json={"username": user[0], "password": user[1]})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def emulator_stats(emulator_http: httpx.AsyncClient) -> dict[str, Any]:
    """The emulator's request and grant counters."""
    response = await emulator_http.get("/__emulator/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}
