"""Auth0's login limits as the gateway's callers meet them: suspicious-IP throttling and the
same-user login limit, each a 429 with ``Retry-After``.

The emulator here keeps tight limits (the test fixtures otherwise make them roomy): 3 logins
per account and IP, then 1 a minute; 4 failed logins per IP, across accounts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningEmulator, start_emulator
from tests.e2e.conftest import ADMIN, VIEWER
from tests.emulator.auth_helpers import demo_tenant

SUSPICIOUS = (
    "We have detected suspicious login behavior and further attempts will be blocked. Please "
    "contact the administrator."
)


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    """The demo tenant with tight login limits."""
    data = demo_tenant()
    data["limits"].update(
        same_user_login_burst=3, same_user_login_per_minute=1, suspicious_ip_max_attempts=4
    )
    running = start_emulator(data)
    yield running
    running.server.stop()


async def _login(
    gateway: httpx.AsyncClient, user: tuple[str, str], *, client_ip: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": client_ip} if client_ip else {}
    body = {"username": user[0], "password": user[1]}
    return await gateway.post("/auth/login", json=body, headers=headers)


class TestSameUserLoginLimit:
    async def test_is_429_with_auth0s_wait(self, gateway: httpx.AsyncClient) -> None:
        for _ in range(3):
            assert (await _login(gateway, VIEWER)).status_code == 200
        before = time.time()
        response = await _login(gateway, VIEWER)
        assert response.status_code == 429
        assert response.json() == {
            "error": "too_many_requests",
            "error_description": "Too many login attempts for this account; try again later.",
        }
        # from Auth0's X-RateLimit-Reset: the bucket of 3 refills at 1 a minute
        assert 120 <= int(response.headers["retry-after"]) <= 182 + time.time() - before

    async def test_other_accounts_log_in(self, gateway: httpx.AsyncClient) -> None:
        for _ in range(3):
            assert (await _login(gateway, VIEWER)).status_code == 200
        assert (await _login(gateway, VIEWER)).status_code == 429
        assert (await _login(gateway, ADMIN)).status_code == 200


class TestSuspiciousIpThrottling:
    async def test_is_429_for_every_account_from_that_client(
        self, gateway_factory: Callable[..., Any]
    ) -> None:
        gateway, _ = await gateway_factory(trusted_proxies=["127.0.0.0/8"])
        attacker = "203.0.113.7"
        for n in range(4):
            response = await _login(
                gateway, (f"victim{n}@venues.local", "guess"), client_ip=attacker
            )
            assert response.status_code == 401
        for user in (VIEWER, ADMIN):
            response = await _login(gateway, user, client_ip=attacker)
            assert response.status_code == 429
            assert response.json() == {
                "error": "too_many_attempts",
                "error_description": SUSPICIOUS,
            }
            assert int(response.headers["retry-after"]) > 0
        # the gateway sends each client's own IP, so nobody else is locked out
        assert (await _login(gateway, VIEWER, client_ip="198.51.100.9")).status_code == 200
