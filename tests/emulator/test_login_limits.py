"""The password grants' login limits: the same-user login limit and suspicious-IP throttling.

The test fixtures give every tenant roomy login limits (``tests/conftest.py``); these tests set
their own in the tenant data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from emulator.state import Tenant
from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import (
    ADMIN,
    VIEWER,
    assert_error,
    client_for,
    demo_tenant,
    login_body,
)

Factory = Callable[[dict[str, Any] | None], RunningEmulator]
RATE_LIMITED = (
    "Too many requests. Check the X-RateLimit-Limit, X-RateLimit-Remaining and "
    "X-RateLimit-Reset headers."
)
SUSPICIOUS = (
    "We have detected suspicious login behavior and further attempts will be blocked. Please "
    "contact the administrator."
)
BLOCKED = (
    "Your account has been blocked after multiple consecutive login attempts. We've sent you a "
    "notification via your preferred contact method with instructions on how to unblock it."
)


def _tenant(**limits: Any) -> dict[str, Any]:
    data = demo_tenant()
    data["limits"].update(limits)
    return data


async def _login(
    http: httpx.AsyncClient,
    user: tuple[str, str] = ADMIN,
    *,
    right: bool = True,
    ip: str | None = None,
) -> httpx.Response:
    headers = {"auth0-forwarded-for": ip} if ip else {}
    body = login_body(user, password=user[1] if right else "Wrong-Passw0rd!")
    return await http.post("/oauth/token", json=body, headers=headers)


async def _move_clock(http: httpx.AsyncClient, offset_s: float) -> None:
    response = await http.post("/__emulator/clock", json={"offset_s": offset_s})
    assert response.status_code == 200


def test_the_defaults_are_auth0s() -> None:
    tenant = Tenant.from_file(None, "http://emulator.test/")
    assert tenant.same_user_login_limit.burst == 20
    assert tenant.same_user_login_limit.per_minute == 10
    assert tenant.same_user_login_limit.enabled
    assert tenant.suspicious_ip_limit.burst == 100
    assert round(tenant.suspicious_ip_limit.per_second * 86_400) == 100
    assert tenant.suspicious_ip_limit.enabled
    assert tenant.brute_force_block_s == 30 * 86_400


def test_the_fixtures_make_them_roomy_unless_told(
    emulator: RunningEmulator, emulator_factory: Factory
) -> None:
    assert emulator.tenant.same_user_login_limit.burst == 100_000
    assert emulator.tenant.suspicious_ip_limit.burst == 100_000
    told = emulator_factory(_tenant(same_user_login_burst=20)).tenant
    assert told.same_user_login_limit.burst == 20
    assert told.suspicious_ip_limit.burst == 100_000


class TestSameUserLoginLimit:
    async def test_twenty_then_ten_a_minute(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(same_user_login_burst=20, same_user_login_per_minute=10))
        async with client_for(running) as http:
            for _ in range(20):
                assert (await _login(http)).status_code == 200
            limited = await _login(http)
            assert_error(limited, 429, "too_many_requests", RATE_LIMITED)
            assert limited.headers["x-ratelimit-limit"] == "10"
            assert limited.headers["x-ratelimit-remaining"] == "0"
            reset = int(limited.headers["x-ratelimit-reset"])
            assert time.time() < reset <= time.time() + 121
            assert limited.headers["cache-control"] == "no-store"
            # 10 a minute: a token every 6 s
            await _move_clock(http, 6)
            assert (await _login(http)).status_code == 200
            assert (await _login(http)).status_code == 429

    async def test_failures_count_and_the_limit_comes_first(
        self, emulator_factory: Factory
    ) -> None:
        running = emulator_factory(_tenant(same_user_login_burst=3, same_user_login_per_minute=1))
        async with client_for(running) as http:
            assert (await _login(http, right=False)).status_code == 403
            assert (await _login(http)).status_code == 200
            assert (await _login(http, right=False)).status_code == 403
            limited = await _login(http, right=False)
        assert_error(limited, 429, "too_many_requests", RATE_LIMITED)
        # the refused attempt was no failure for brute-force protection
        assert running.tenant.failed_logins[("auth0|demo-admin", "127.0.0.1")].count == 1

    async def test_keyed_by_account_and_ip(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(same_user_login_burst=2, same_user_login_per_minute=1))
        async with client_for(running) as http:
            for _ in range(2):
                assert (await _login(http, ip="203.0.113.7")).status_code == 200
            assert (await _login(http, ip="203.0.113.7")).status_code == 429
            assert (await _login(http, VIEWER, ip="203.0.113.7")).status_code == 200
            assert (await _login(http, ip="198.51.100.9")).status_code == 200

    async def test_can_be_switched_off(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(same_user_login_burst=1, same_user_login_enabled=False))
        async with client_for(running) as http:
            for _ in range(3):
                assert (await _login(http)).status_code == 200


class TestSuspiciousIpThrottling:
    async def test_failures_across_accounts_block_every_account(
        self, emulator_factory: Factory
    ) -> None:
        running = emulator_factory(_tenant(suspicious_ip_max_attempts=3))
        async with client_for(running) as http:
            # unknown accounts count too: they are failed logins all the same
            assert (await _login(http, ("nobody@venues.local", "x"))).status_code == 403
            assert (await _login(http, VIEWER, right=False)).status_code == 403
            assert (await _login(http, right=False)).status_code == 403
            for user in (ADMIN, VIEWER):
                assert_error(await _login(http, user), 429, "too_many_attempts", SUSPICIOUS)
            assert_error(
                await _login(http, ("someone@venues.local", "x")),
                429,
                "too_many_attempts",
                SUSPICIOUS,
            )

    async def test_auth0s_hundred_a_day(self, emulator_factory: Factory) -> None:
        running = emulator_factory(
            _tenant(suspicious_ip_max_attempts=100, suspicious_ip_per_day=100)
        )
        async with client_for(running) as http:
            for n in range(100):
                response = await _login(http, (f"nobody{n}@venues.local", "x"))
                assert response.status_code == 403
            assert_error(await _login(http), 429, "too_many_attempts", SUSPICIOUS)
            # 100 a day: a new attempt about every 15 minutes
            await _move_clock(http, 800)
            assert (await _login(http)).status_code == 429
            await _move_clock(http, 870)
            assert (await _login(http)).status_code == 200

    async def test_successes_do_not_reset_it(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(suspicious_ip_max_attempts=3))
        async with client_for(running) as http:
            for _ in range(2):
                assert (await _login(http, VIEWER, right=False)).status_code == 403
            assert (await _login(http, VIEWER)).status_code == 200
            assert (await _login(http, right=False)).status_code == 403
            assert (await _login(http)).status_code == 429

    async def test_keyed_by_the_forwarded_ip_of_a_trusted_client(
        self, emulator_factory: Factory
    ) -> None:
        running = emulator_factory(_tenant(suspicious_ip_max_attempts=2))
        async with client_for(running) as http:
            for _ in range(2):
                response = await _login(http, ("nobody@venues.local", "x"), ip="203.0.113.7")
                assert response.status_code == 403
            assert (await _login(http, ip="203.0.113.7")).status_code == 429
            assert (await _login(http, ip="198.51.100.9")).status_code == 200
            assert (await _login(http)).status_code == 200

    async def test_the_peer_when_the_client_is_not_trusted(self, emulator_factory: Factory) -> None:
        data = _tenant(suspicious_ip_max_attempts=2)
        data["clients"][0]["is_token_endpoint_ip_header_trusted"] = False
        running = emulator_factory(data)
        async with client_for(running) as http:
            for n in range(2):
                response = await _login(http, ("nobody@venues.local", "x"), ip=f"203.0.113.{n}")
                assert response.status_code == 403
            response = await _login(http, ip="198.51.100.9")
        assert_error(response, 429, "too_many_attempts", SUSPICIOUS)

    async def test_control_route_lifts_it(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(suspicious_ip_max_attempts=1))
        async with client_for(running) as http:
            assert (await _login(http, right=False)).status_code == 403
            assert (await _login(http)).status_code == 429
            assert (await http.delete("/__emulator/blocks")).status_code == 204
            assert (await _login(http)).status_code == 200

    async def test_can_be_switched_off(self, emulator_factory: Factory) -> None:
        running = emulator_factory(
            _tenant(suspicious_ip_max_attempts=1, suspicious_ip_enabled=False)
        )
        async with client_for(running) as http:
            for n in range(3):
                response = await _login(http, (f"nobody{n}@venues.local", "x"))
                assert response.status_code == 403
            assert (await _login(http)).status_code == 200


class TestBruteForceBlockLapses:
    async def test_thirty_days_after_the_last_failure(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(brute_force_threshold=2))
        async with client_for(running) as http:
            await _login(http, right=False)
            await _move_clock(http, 10 * 86_400)
            await _login(http, right=False)
            assert_error(await _login(http), 429, "too_many_attempts", BLOCKED)
            # 30 days after the first failure, 20 after the last: still blocked
            await _move_clock(http, 30 * 86_400)
            assert (await _login(http)).status_code == 429
            await _move_clock(http, 40 * 86_400)
            assert (await _login(http)).status_code == 200

    async def test_the_tenant_file_sets_how_long(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(brute_force_threshold=2, brute_force_block_s=3600))
        assert running.tenant.brute_force_block_s == 3600
        async with client_for(running) as http:
            await _login(http, right=False)
            await _login(http, right=False)
            assert_error(await _login(http), 429, "too_many_attempts", BLOCKED)
            await _move_clock(http, 3500)
            assert (await _login(http)).status_code == 429
            await _move_clock(http, 3700)
            assert (await _login(http)).status_code == 200
