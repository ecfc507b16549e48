"""Small helpers of the ``/users`` tests (this module holds no tests)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import RunningEmulator
from tests.e2e.conftest import bearer

STRONG = "Str0ng-Passw0rd!"


def new_email() -> str:
    """A fresh address nobody signed up with yet."""
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def sign_up(
    gateway: httpx.AsyncClient, email: str | None = None, password: str = STRONG
) -> tuple[str, str, dict[str, Any]]:
    """Sign up through the gateway: (email, password, the answer's body)."""
    email = email or new_email()
    response = await gateway.post(
        "/users", json={"email": email, "password": password, "name": "Jane Doe"}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return email, password, body


async def login_as(gateway: httpx.AsyncClient, email: str, password: str) -> str:
    """An access token for ``email``."""
    response = await gateway.post("/auth/login", json={"username": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def new_session(
    gateway: httpx.AsyncClient, emulator: RunningEmulator, email: str, password: str
) -> str:
    """Another login of ``email``, a second later on the emulator's clock.

    Auth0's access tokens carry no ``jti``: two logins of one user in the same second get the
    very same token, which would make them one session.
    """
    emulator.tenant.clock_offset_s += 1
    return await login_as(gateway, email, password)


async def me(gateway: httpx.AsyncClient, token: str) -> httpx.Response:
    """``GET /auth/me``: 200 while the token works."""
    return await gateway.get("/auth/me", headers=bearer(token))
