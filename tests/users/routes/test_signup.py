"""``POST /users``: sign-up through the Management API, duplicates, weak passwords, the IP limit."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import RunningEmulator
from tests.users.routes.helpers import STRONG, login_as, new_email, sign_up


class TestSignUp:
    async def test_creates_the_user_in_the_connection_and_they_can_log_in(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        email, password, body = await sign_up(gateway)

        assert body["email"] == email
        assert body["name"] == "Jane Doe"
        assert body["user_id"].startswith("auth0|")
        assert body["email_verified"] is False
        # the self view: no admin fields, no identities, never the password
        assert not {"blocked", "app_metadata", "identities", "password"} & set(body)
        stored = emulator.tenant.users[body["user_id"]]
        assert stored.connection == "Username-Password-Authentication"
        assert await login_as(gateway, email, password)

    async def test_existing_email_is_409(self, gateway: httpx.AsyncClient) -> None:
        email, _, _ = await sign_up(gateway)
        response = await gateway.post(
            "/users", json={"email": email, "password": STRONG, "name": "Someone Else"}
        )
        assert response.status_code == 409
        assert response.json()["error"] == "user_exists"

    async def test_weak_password_is_400_with_the_tenants_reason(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        response = await gateway.post(
            "/users", json={"email": new_email(), "password": "short", "name": "Jane"}
        )
        assert response.status_code == 400
        body = response.json()
        assert body["error"] == "weak_password"
        assert body["error_description"] == "PasswordStrengthError: Password is too weak"
        assert "short" not in response.text.replace("PasswordStrength", "")
        assert len(emulator.tenant.users) == 2, "nobody was created"

    async def test_invalid_fields_are_422_before_any_upstream_call(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        await emulator_http.post("/__emulator/stats/reset")
        for body in (
            {"email": "not-an-email", "password": STRONG, "name": "Jane"},
            {"email": new_email(), "password": STRONG},
            {"email": new_email(), "password": STRONG, "name": "x" * 301},
            {"email": new_email(), "password": STRONG, "name": "Jane", "blocked": False},
        ):
            response = await gateway.post("/users", json=body)
            assert response.status_code == 422, body
            assert response.json()["error"] == "invalid_request"
        stats = (await emulator_http.get("/__emulator/stats")).json()
        assert "POST /api/v2/users" not in stats["requests"]


class TestSignUpRateLimit:
    async def test_limited_per_client_ip_with_retry_after(
        self, gateway_factory: Callable[..., Any]
    ) -> None:
        client, _ = await gateway_factory(users={"signup_per_ip_per_hour": 2})
        await sign_up(client)
        await sign_up(client)
        response = await client.post(
            "/users", json={"email": new_email(), "password": STRONG, "name": "Jane"}
        )
        assert response.status_code == 429
        assert response.json()["error"] == "too_many_requests"
        assert 0 < int(response.headers["retry-after"]) <= 3600

    async def test_the_count_is_shared_by_every_worker(
        self, gateway_factory: Callable[..., Any]
    ) -> None:
        namespace = {"namespace": f"t-{uuid.uuid4().hex[:8]}"}
        first, _ = await gateway_factory(users={"signup_per_ip_per_hour": 2}, cache=namespace)
        second, _ = await gateway_factory(users={"signup_per_ip_per_hour": 2}, cache=namespace)
        await sign_up(first)
        await sign_up(second)
        response = await first.post(
            "/users", json={"email": new_email(), "password": STRONG, "name": "Jane"}
        )
        assert response.status_code == 429

    async def test_other_addresses_are_not_limited(
        self, gateway_factory: Callable[..., Any]
    ) -> None:
        client, _ = await gateway_factory(
            users={"signup_per_ip_per_hour": 1}, trusted_proxies=["127.0.0.0/8"]
        )
        for address in ("203.0.113.7", "203.0.113.8"):
            response = await client.post(
                "/users",
                json={"email": new_email(), "password": STRONG, "name": "Jane"},
                headers={"X-Forwarded-For": address},
            )
            assert response.status_code == 201, response.text
        response = await client.post(
            "/users",
            json={"email": new_email(), "password": STRONG, "name": "Jane"},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        assert response.status_code == 429
