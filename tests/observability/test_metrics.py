"""``GET /metrics``: the counters an operator watches move with the traffic that drives them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.conftest import VIEWER, bearer, login
from tests.e2e.test_token_validation import direct_token
from tests.observability.scrape import sample, scrape
from tests.servers import MemcachedProcess

Factory = Callable[..., Any]


async def test_scrape_is_prometheus_text(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory()
    response = await gateway.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE gateway_http_requests_total counter" in response.text
    assert "# TYPE gateway_http_request_duration_seconds histogram" in response.text


async def test_login_and_cached_requests_move_the_counters(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory()
    token = await login(gateway)
    for _ in range(2):
        assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
    text = await scrape(gateway)

    assert sample(text, "gateway_auth_operations_total", operation="login", outcome="ok") == 1
    assert (
        sample(
            text,
            "gateway_auth0_requests_total",
            endpoint="oauth_token_password_realm",
            outcome="ok",
        )
        == 1
    )
    assert (
        sample(
            text,
            "gateway_auth0_request_duration_seconds_count",
            endpoint="oauth_token_password_realm",
        )
        == 1
    )
    # the login cached the principal in this process: both requests are in-process hits
    assert sample(text, "gateway_token_cache_lookups_total", tier="local", outcome="hit") == 2
    assert sample(text, "gateway_token_cache_lookups_total", tier="memcached", outcome="hit") == 0
    assert (
        sample(text, "gateway_http_requests_total", route="/auth/me", method="GET", status="200")
        == 2
    )
    assert (
        sample(text, "gateway_http_request_duration_seconds_count", route="/auth/me", method="GET")
        == 2
    )
    assert (
        sample(
            text, "gateway_http_requests_total", route="/auth/login", method="POST", status="200"
        )
        == 1
    )


async def test_failed_operations_count_their_error_code(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory()
    wrong = await gateway.post(
        "/auth/login", json={"username": VIEWER[0], "password": "Not-The-Passw0rd!"}
    )
    assert wrong.status_code == 401
    anonymous = await gateway.get("/auth/me")
    assert anonymous.status_code == 401
    token = await login(gateway)
    assert (await gateway.post("/auth/logout", headers=bearer(token))).status_code == 204
    assert (await gateway.post("/auth/refresh", headers=bearer(token))).status_code == 401
    text = await scrape(gateway)

    labels = {"operation": "login", "outcome": "invalid_grant"}
    assert sample(text, "gateway_auth_operations_total", **labels) == 1
    assert sample(text, "gateway_auth_operations_total", operation="logout", outcome="ok") == 1
    assert (
        sample(text, "gateway_auth_operations_total", operation="refresh", outcome="invalid_grant")
        == 1
    )
    assert sample(text, "gateway_auth0_requests_total", endpoint="oauth_revoke", outcome="ok") == 1
    assert (
        sample(text, "gateway_http_requests_total", route="/auth/me", method="GET", status="401")
        == 1
    )


async def test_shared_tier_hits_and_misses(
    gateway_factory: Factory, emulator_http: httpx.AsyncClient
) -> None:
    namespace = f"m-{uuid.uuid4().hex[:8]}"
    first, _ = await gateway_factory(cache={"namespace": namespace})
    second, _ = await gateway_factory(cache={"namespace": namespace})
    token = await direct_token(emulator_http)

    assert (await first.get("/auth/me", headers=bearer(token))).status_code == 200
    assert (await second.get("/auth/me", headers=bearer(token))).status_code == 200
    first_text, second_text = await scrape(first), await scrape(second)

    lookups = "gateway_token_cache_lookups_total"
    # the first gateway validated the token, the second found it in memcached
    assert sample(first_text, lookups, tier="local", outcome="miss") == 1
    assert sample(first_text, lookups, tier="memcached", outcome="miss") == 1
    assert sample(second_text, lookups, tier="local", outcome="miss") == 1
    assert sample(second_text, lookups, tier="memcached", outcome="hit") == 1


async def test_memcached_down_counts_errors(
    gateway_factory: Factory, emulator_http: httpx.AsyncClient, memcached: MemcachedProcess
) -> None:
    gateway, _ = await gateway_factory(cache_url=memcached.url)
    token = await direct_token(emulator_http)
    memcached.stop()

    assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
    text = await scrape(gateway)

    lookups = "gateway_token_cache_lookups_total"
    assert sample(text, lookups, tier="memcached", outcome="error") == 1
    assert sample(text, lookups, tier="memcached", outcome="miss") == 0


async def test_frozen_memcached_shows_an_open_breaker_and_short_circuits(
    gateway_factory: Factory, emulator_http: httpx.AsyncClient, memcached: MemcachedProcess
) -> None:
    gateway, settings = await gateway_factory(
        cache_url=memcached.url,
        cache={"timeout_s": 0.2, "breaker_cooldown_s": 0.5, "local_ttl_s": 0},
    )
    token = await direct_token(emulator_http)
    node = f"127.0.0.1:{memcached.port}"
    assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
    memcached.pause()
    try:
        # the first requests pay the timeouts that open the breaker; then none waits
        for _ in range(settings.cache.breaker_threshold):
            assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
        started = time.monotonic()
        for _ in range(5):
            assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
        elapsed = time.monotonic() - started
        text = await scrape(gateway)
    finally:
        memcached.resume()

    # without the breaker each of them waits at least one timeout
    assert elapsed < 2 * settings.cache.timeout_s, f"five requests took {elapsed:.2f} s"
    assert sample(text, "gateway_cache_breaker_open", node=node) == 1
    assert sample(text, "gateway_cache_breaker_short_circuits_total", node=node) >= 5
    assert sample(text, "gateway_token_cache_lookups_total", tier="memcached", outcome="error") >= 5
    deadline = time.monotonic() + 5
    while sample(await scrape(gateway), "gateway_cache_breaker_open", node=node) != 0:
        assert time.monotonic() < deadline, "the breaker did not close after memcached resumed"
        await asyncio.sleep(0.1)


async def test_concurrent_first_requests_wait_for_one_validation(
    gateway_factory: Factory, emulator_http: httpx.AsyncClient
) -> None:
    gateway, _ = await gateway_factory()
    token = await direct_token(emulator_http)

    responses = await asyncio.gather(
        *(gateway.get("/auth/me", headers=bearer(token)) for _ in range(20))
    )
    assert {response.status_code for response in responses} == {200}
    text = await scrape(gateway)

    waits = sample(text, "gateway_coalesced_waits_total", flight="validation")
    misses = sample(text, "gateway_token_cache_lookups_total", tier="memcached", outcome="miss")
    # every caller that missed both tiers either ran the one validation or waited for it
    assert waits >= 1
    assert waits == misses - 1


async def test_metrics_can_be_turned_off(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory(metrics_enabled=False)
    assert (await gateway.get("/metrics")).status_code == 404


async def test_apps_in_one_process_count_apart(gateway_factory: Factory) -> None:
    first, _ = await gateway_factory()
    second, _ = await gateway_factory()
    await first.get("/healthz")

    route = {"route": "/healthz", "method": "GET", "status": "200"}
    assert sample(await scrape(first), "gateway_http_requests_total", **route) == 1
    assert sample(await scrape(second), "gateway_http_requests_total", **route) == 0
