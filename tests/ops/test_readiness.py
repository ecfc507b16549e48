"""``/healthz`` touches nothing; ``/readyz`` names the component that fails, and answers 503 only
when this replica cannot serve (memcached or the database down is 200 ``degraded``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.db import migrations
from app.db.engine import create_engine
from settings import DatabaseSettings
from tests.db.postgres import PostgresProcess
from tests.e2e.conftest import ADMIN, bearer, login
from tests.e2e.test_token_validation import direct_token
from tests.observability.scrape import sample, scrape
from tests.servers import MemcachedProcess, free_port

Factory = Callable[..., Any]


async def test_ready_with_every_component(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory()
    response = await gateway.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["components"]) == {"cache", "jwks", "database"}
    assert all(component["ok"] for component in body["components"].values())
    assert body["components"]["cache"]["backend"] == "memcached"
    assert body["components"]["database"]["backend"] == "sqlite"


async def test_memcached_down_is_degraded_and_named(
    gateway_factory: Factory, memcached: MemcachedProcess
) -> None:
    gateway, settings = await gateway_factory(cache_url=memcached.url)
    assert (await gateway.get("/readyz")).status_code == 200
    memcached.stop()

    # shared by every replica: a 503 would take them all out of rotation at once
    response = await gateway.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    cache = body["components"]["cache"]
    assert cache["ok"] is False
    assert cache["backend"] == "memcached"
    assert cache["detail"] == f"memcached did not answer within {settings.cache.timeout_s:g} s"
    assert body["components"]["jwks"]["ok"] is True
    assert body["components"]["database"]["ok"] is True


async def test_memcached_back_is_ready_again(
    gateway_factory: Factory, memcached: MemcachedProcess
) -> None:
    gateway, _ = await gateway_factory(cache_url=memcached.url)
    memcached.stop()
    assert (await gateway.get("/readyz")).json()["status"] == "degraded"
    memcached.start()
    response = await gateway.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_each_change_of_status_is_logged_once(
    gateway_factory: Factory, memcached: MemcachedProcess, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, _ = await gateway_factory(cache_url=memcached.url)
    caplog.set_level(logging.DEBUG)
    assert (await gateway.get("/readyz")).json()["status"] == "ready"
    memcached.stop()
    for _ in range(3):
        assert (await gateway.get("/readyz")).json()["status"] == "degraded"
    memcached.start()
    for _ in range(2):
        assert (await gateway.get("/readyz")).json()["status"] == "ready"

    changes = [r for r in caplog.records if r.name == "app.routers.health"]
    assert [(r.levelno, r.getMessage().split(",")[0]) for r in changes] == [
        (logging.WARNING, "readiness: degraded (was ready)"),
        (logging.INFO, "readiness: ready again (was degraded)"),
    ]
    assert "still serving, /readyz answers 200" in changes[0].getMessage()
    assert "cache: memcached did not answer" in changes[0].getMessage()
    probes = [r for r in caplog.records if r.name == "app.access" and "/readyz" in r.getMessage()]
    assert len(probes) == 6
    assert {r.levelno for r in probes} == {logging.DEBUG}, "a degraded probe is a 200: DEBUG"


async def test_frozen_memcached_opens_the_breaker_which_readyz_names(
    gateway_factory: Factory, memcached: MemcachedProcess
) -> None:
    gateway, settings = await gateway_factory(
        cache_url=memcached.url, cache={"timeout_s": 0.2, "breaker_cooldown_s": 0.5}
    )
    node = f"127.0.0.1:{memcached.port}"
    assert (await gateway.get("/readyz")).status_code == 200
    assert sample(await scrape(gateway), "gateway_cache_breaker_open", node=node) == 0
    memcached.pause()  # accepts connections, answers nothing
    try:
        # each of the first probes waits out memcached's timeout; together they open it
        for _ in range(settings.cache.breaker_threshold):
            assert (await gateway.get("/readyz")).json()["status"] == "degraded"

        started = time.monotonic()
        response = await gateway.get("/readyz")
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        cache = response.json()["components"]["cache"]
        assert set(cache) == {"ok", "backend", "detail", "nodes"}
        assert cache["nodes"] is None
        assert cache["ok"] is False
        assert cache["backend"] == "memcached"
        assert cache["detail"].startswith("circuit breaker open for ")
        assert "a probe runs every 0.5 s" in cache["detail"]
        assert elapsed < settings.cache.timeout_s, "an open breaker answers without waiting"
        assert response.json()["components"]["database"]["ok"] is True

        text = await scrape(gateway)
        assert sample(text, "gateway_cache_breaker_open", node=node) == 1
        assert sample(text, "gateway_cache_breaker_short_circuits_total", node=node) >= 1
    finally:
        memcached.resume()

    deadline = time.monotonic() + 5
    while (response := await gateway.get("/readyz")).json()["status"] != "ready":
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.1)
    assert sample(await scrape(gateway), "gateway_cache_breaker_open", node=node) == 0


async def test_a_pool_is_ready_while_one_node_answers_and_names_each(
    gateway_factory: Factory,
) -> None:
    servers = [MemcachedProcess().start() for _ in range(3)]
    try:
        url = "memcached://" + ",".join(f"127.0.0.1:{server.port}" for server in servers)
        gateway, _ = await gateway_factory(
            cache_url=url, cache={"breaker_threshold": 1, "breaker_cooldown_s": 30}
        )
        nodes = [f"127.0.0.1:{server.port}" for server in servers]
        response = await gateway.get("/readyz")
        assert response.status_code == 200
        cache = response.json()["components"]["cache"]
        assert cache["detail"] == "3 of 3 nodes answer"
        assert cache["nodes"] == {node: {"ok": True, "detail": "answers"} for node in nodes}

        servers[0].stop()
        response = await gateway.get("/readyz")
        assert response.status_code == 200, "the other nodes serve the stopped one's keys"
        cache = response.json()["components"]["cache"]
        assert cache["ok"] is True
        assert cache["detail"] == "2 of 3 nodes answer"
        assert cache["nodes"][nodes[0]]["ok"] is False
        assert cache["nodes"][nodes[1]]["ok"] is True
        # the failed ping opened its breaker (threshold 1): named as ejected from now on
        response = await gateway.get("/readyz")
        detail = response.json()["components"]["cache"]["nodes"][nodes[0]]["detail"]
        assert detail.startswith("ejected, its keys served by the others; circuit breaker open")
        assert sample(await scrape(gateway), "gateway_cache_breaker_open", node=nodes[0]) == 1

        for server in servers[1:]:
            server.stop()
        response = await gateway.get("/readyz")
        assert response.status_code == 200, "requests are still served, through the database"
        assert response.json()["status"] == "degraded"
        cache = response.json()["components"]["cache"]
        assert cache["ok"] is False
        assert cache["detail"] == "0 of 3 nodes answer"
    finally:
        for server in servers:
            server.stop()


async def test_unreachable_tenant_without_cached_keys_is_not_ready(
    gateway_factory: Factory,
) -> None:
    gateway, _ = await gateway_factory(auth0={"domain": f"http://127.0.0.1:{free_port()}"})
    response = await gateway.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    jwks = response.json()["components"]["jwks"]
    assert jwks["ok"] is False
    assert jwks["detail"].startswith("tenant keys unreachable")


async def test_liveness_needs_nothing(
    gateway_factory: Factory, memcached: MemcachedProcess
) -> None:
    gateway, _ = await gateway_factory(
        cache_url=memcached.url, auth0={"domain": f"http://127.0.0.1:{free_port()}"}
    )
    memcached.stop()
    response = await gateway.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_database_lost_after_start_is_degraded(gateway_factory: Factory) -> None:
    server = PostgresProcess().start()
    try:
        gateway, _ = await gateway_factory(database={"url": server.url, "timeout_s": 1})
        token = await login(gateway)
        assert (await gateway.get("/readyz")).json()["status"] == "ready"
        server.stop()

        # this process has read the revocations: it still checks new tokens against them
        response = await gateway.get("/readyz")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "degraded"
        database = body["components"]["database"]
        assert database["ok"] is False
        assert database["backend"] == "postgresql"
        assert database["detail"].endswith(
            "; new tokens are checked against the revocations this process has read"
        )
        assert body["components"]["cache"]["ok"] is True
        assert body["components"]["jwks"]["ok"] is True
        assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
    finally:
        server.stop()


async def _may_not_read_revocations(server_url: str) -> str:
    """Migrate the server's database, and a role that may use every table but the revocations:
    a process logging in as it never reads them. That role's URL."""
    engine = create_engine(DatabaseSettings(url=server_url))
    try:
        await migrations.upgrade(engine)
        async with engine.begin() as connection:
            for statement in (
                "CREATE ROLE gateway LOGIN",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO gateway",
                "REVOKE SELECT ON auth_revocations FROM gateway",
            ):
                await connection.execute(text(statement))
    finally:
        await engine.dispose()
    return server_url.replace("//postgres@", "//gateway@")


async def test_database_lost_before_the_revocations_were_ever_read_is_not_ready(
    gateway_factory: Factory,
) -> None:
    server = PostgresProcess().start()
    try:
        url = await _may_not_read_revocations(server.url)
        gateway, _ = await gateway_factory(database={"url": url, "timeout_s": 1})
        response = await gateway.get("/readyz")
        assert response.json()["status"] == "ready", "the database answers: tokens are checked"
        server.stop()

        # a new token could be a logged-out one: this replica cannot serve it, others may
        response = await gateway.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not_ready"
        database = body["components"]["database"]
        assert database["ok"] is False
        assert database["detail"].endswith(
            "; this process has never read the revocations: new tokens cannot be checked"
        )
        assert body["components"]["jwks"]["ok"] is True
    finally:
        server.stop()


async def test_a_replica_that_never_read_the_revocations_refuses_new_tokens_as_documented(
    gateway_factory: Factory, emulator_http: httpx.AsyncClient
) -> None:
    """The answer behind not_ready: a token this process has never seen is 503
    session_store_unavailable with Retry-After (it might be a logged-out one), as the OpenAPI
    document says for every protected route."""
    server = PostgresProcess().start()
    try:
        url = await _may_not_read_revocations(server.url)
        gateway, _ = await gateway_factory(database={"url": url, "timeout_s": 1})
        token = await direct_token(emulator_http, ADMIN)
        response = await gateway.get("/auth/me", headers=bearer(token))
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "session_store_unavailable"
        assert int(response.headers["retry-after"]) > 0
        spec = (await gateway.get("/openapi.json")).json()
        examples = spec["paths"]["/auth/me"]["get"]["responses"]["503"]["content"][
            "application/json"
        ]["examples"]
        assert response.json() in [example["value"] for example in examples.values()]
    finally:
        server.stop()
