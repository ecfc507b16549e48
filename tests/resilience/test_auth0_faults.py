"""Auth0 answering 503, stalling for 5 s, or answering 429, while cached tokens keep coming.

Whatever has to ask Auth0 (logins, refreshes, a token never seen before) gets 503 or 429 with
``Retry-After`` within the gateway's own timeout budget; requests with cached tokens neither
fail nor wait. ``tests/e2e/test_failures.py`` covers Auth0 gone entirely and a single stalled
login; this is the same under load, for each kind of fault and each kind of call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN, VIEWER, bearer, login
from tests.e2e.test_token_validation import direct_token
from tests.resilience.conftest import run_load

pytestmark = pytest.mark.resilience

TIMEOUT_S = 1.0  # the gateway's budget for one call to Auth0 (GATEWAY_AUTH0__TIMEOUT_S)
# scheduling: the emulator shares this process and its GIL with the load (a busy CI machine
# has shown 1.7 s); the stall below stays well beyond timeout + slack, so a call that waited
# for Auth0 instead of timing out still fails the test
SLACK_S = 2.0
LOOPS = 8

# fault -> (what the emulator does, what the gateway answers a login or refresh with)
FAULTS: dict[str, tuple[dict[str, Any], int]] = {
    "503": ({"status": 503, "body": {"error": "temporarily_unavailable"}}, 503),
    "stall-5s": ({"status": None, "delay_ms": 5000}, 503),
    "429": (
        {
            "status": 429,
            "body": {"error": "too_many_requests", "error_description": "Global limit reached"},
            "headers": {
                "x-ratelimit-limit": "100",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(time.time()) + 30),
            },
        },
        429,
    ),
}


async def opaque_token(emulator_http: httpx.AsyncClient) -> str:
    """A token good only at ``/userinfo`` (no audience): the gateway must ask Auth0 about it."""
    response = await emulator_http.post(
        "/oauth/token",
        json={
            "grant_type": "password",
            "username": ADMIN[0],
            "password": ADMIN[1],
            "client_id": "local-gateway",
            "client_secret": "local-gateway-secret",
            "scope": "openid",
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    assert token.count(".") == 4, "expected an encrypted (JWE) token"
    return token


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_calls_to_auth0_fail_fast_and_cached_tokens_are_unaffected(
    fault: str,
    gateway_factory: Callable[..., Any],
    emulator_http: httpx.AsyncClient,
    postgres_module_database: str,
) -> None:
    # PostgreSQL, as deployed: aiosqlite hands every statement to a thread and back, and under
    # this load each hand-back waits for the busy event loop, which is SQLite's cost, not Auth0's
    client, _ = await gateway_factory(
        auth0={"timeout_s": TIMEOUT_S, "accept_opaque_tokens": True},
        database={"url": postgres_module_database},
    )
    cached = [await login(client, VIEWER), await direct_token(emulator_http, ADMIN)]
    for token in cached:
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
    session = await login(client, ADMIN)  # to be refreshed while Auth0 fails
    unseen = await opaque_token(emulator_http)
    spec, expected = FAULTS[fault]
    for path in ("/oauth/token", "/userinfo"):
        response = await emulator_http.post(
            "/__emulator/faults", json={"path": path, "count": 1000, **spec}
        )
        assert response.status_code == 201, response.text

    async def cached_request(i: int) -> tuple[str, httpx.Response]:
        return "cached", await client.get("/auth/me", headers=bearer(cached[i % len(cached)]))

    async def timed(tag: str, call: Any) -> tuple[str, httpx.Response, float]:
        started = time.perf_counter()
        response = await call
        return tag, response, time.perf_counter() - started

    failing: list[tuple[str, httpx.Response, float]] = []

    async def ask_auth0() -> None:
        credentials = {"username": VIEWER[0], "password": VIEWER[1]}
        failing.extend(
            await asyncio.gather(
                *(timed("login", client.post("/auth/login", json=credentials)) for _ in range(4)),
                *(
                    timed("refresh", client.post("/auth/refresh", headers=bearer(session)))
                    for _ in range(2)
                ),
                timed("unseen token", client.get("/auth/me", headers=bearer(unseen))),
            )
        )

    load = await run_load(
        cached_request,
        loops=LOOPS,
        phases=[("before", 0.2, None), ("faulty", 2.5, ask_auth0)],
    )

    assert len(failing) == 7
    for tag, response, seconds in failing:
        # A token the gateway cannot check is 503 whatever Auth0 said: "cannot validate now"
        # (PrincipalResolver._validate_opaque), with Retry-After like every 503.
        status = 503 if tag == "unseen token" else expected
        assert response.status_code == status, (tag, response.status_code, response.text)
        assert int(response.headers["retry-after"]) > 0, tag
        assert response.json()["error"] in {"upstream_unavailable", "too_many_requests"}, tag
        assert seconds <= TIMEOUT_S + SLACK_S, f"{tag} took {seconds:.2f}s"
    assert load.statuses() == {200: len(load.all())}, "cached tokens must keep working"
    assert len(load.outcomes["faulty"]) >= 4 * LOOPS, "too little load while Auth0 failed"
    slowest = max(o.seconds for o in load.all())
    assert slowest < TIMEOUT_S, f"a cached-token request waited {slowest:.2f}s for Auth0"

    # once Auth0 answers again, the session the failed refresh kept still works
    await emulator_http.delete("/__emulator/faults")
    refreshed = await client.post("/auth/refresh", headers=bearer(session))
    assert refreshed.status_code == 200, refreshed.text
    assert (await client.get("/auth/me", headers=bearer(unseen))).status_code == 200
