"""Brute-force protection on the password grants, keyed by user and end-user IP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

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
BLOCKED = (
    "Your account has been blocked after multiple consecutive login attempts. We've sent you a "
    "notification via your preferred contact method with instructions on how to unblock it."
)
WRONG = "Wrong email or password."


def _tenant(threshold: int = 3, **client: Any) -> dict[str, Any]:
    data = demo_tenant()
    data["limits"]["brute_force_threshold"] = threshold
    data["clients"][0].update(client)
    return data


async def _attempt(
    http: httpx.AsyncClient,
    *,
    right: bool,
    ip: str | None = None,
    user: tuple[str, str] = ADMIN,
    **changes: Any,
) -> httpx.Response:
    headers = {"auth0-forwarded-for": ip} if ip else {}
    password = user[1] if right else "wrong-password"
    body = login_body(user, password=password, **changes)
    return await http.post("/oauth/token", json=body, headers=headers)


class TestPeerAddress:
    async def test_default_threshold_is_ten(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            for _ in range(10):
                assert_error(await _attempt(http, right=False), 403, "invalid_grant", WRONG)
            assert_error(await _attempt(http, right=True), 429, "too_many_attempts", BLOCKED)
            assert_error(await _attempt(http, right=False), 429, "too_many_attempts", BLOCKED)

    async def test_success_resets_the_count(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant())
        async with client_for(running) as http:
            for _ in range(2):
                for _ in range(2):
                    assert (await _attempt(http, right=False)).status_code == 403
                assert (await _attempt(http, right=True)).status_code == 200

    async def test_block_is_per_user(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant())
        async with client_for(running) as http:
            for _ in range(3):
                await _attempt(http, right=False)
            assert (await _attempt(http, right=True)).status_code == 429
            assert (await _attempt(http, right=True, user=VIEWER)).status_code == 200

    async def test_unblock_through_control_route(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant())
        async with client_for(running) as http:
            for _ in range(3):
                await _attempt(http, right=False)
            assert (await _attempt(http, right=True)).status_code == 429
            assert (await http.delete("/__emulator/blocks")).status_code == 204
            assert (await _attempt(http, right=True)).status_code == 200


class TestForwardedFor:
    async def test_trusted_client_counts_each_forwarded_ip(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(is_token_endpoint_ip_header_trusted=True))
        async with client_for(running) as http:
            for _ in range(3):
                response = await _attempt(http, right=False, ip="203.0.113.7")
                assert_error(response, 403, "invalid_grant", WRONG)
            blocked = await _attempt(http, right=True, ip="203.0.113.7")
            assert_error(blocked, 429, "too_many_attempts", BLOCKED)
            # Another end user behind the same gateway is not locked out.
            assert (await _attempt(http, right=False, ip="198.51.100.9")).status_code == 403
            assert (await _attempt(http, right=True, ip="198.51.100.9")).status_code == 200
            assert (await _attempt(http, right=True)).status_code == 200

    async def test_untrusted_client_ignores_the_header(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(is_token_endpoint_ip_header_trusted=False))
        async with client_for(running) as http:
            for n in range(3):
                assert (await _attempt(http, right=False, ip=f"203.0.113.{n}")).status_code == 403
            response = await _attempt(http, right=True, ip="198.51.100.9")
        assert_error(response, 429, "too_many_attempts", BLOCKED)

    async def test_header_needs_secret_authentication(self, emulator_factory: Factory) -> None:
        running = emulator_factory(
            _tenant(is_token_endpoint_ip_header_trusted=True, token_endpoint_auth_method="none")
        )
        async with client_for(running) as http:
            for n in range(3):
                response = await _attempt(
                    http, right=False, ip=f"203.0.113.{n}", client_secret=None
                )
                assert response.status_code == 403
            response = await _attempt(http, right=True, ip="198.51.100.9", client_secret=None)
            assert_error(response, 429, "too_many_attempts", BLOCKED)
            # The same client proving itself with its secret gets the header honoured.
            assert (await _attempt(http, right=True, ip="198.51.100.9")).status_code == 200
