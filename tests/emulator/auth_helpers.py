"""Shared values and small helpers for the Authentication API emulator tests."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import httpx
import jwt

from tests.conftest import RunningEmulator

CLIENT_ID = "local-gateway"
CLIENT_SECRET = "local-gateway-secret"
API = "https://api.venues.local"
REALM = "Username-Password-Authentication"
REALM_GRANT = "http://auth0.com/oauth/grant-type/password-realm"
ADMIN = ("admin@venues.local", "Admin-Passw0rd!")
VIEWER = ("viewer@venues.local", "Viewer-Passw0rd!")
ALL_VENUE_SCOPES = [
    "read:venues",
    "create:venues",
    "update:venues",
    "delete:venues",
    "read:users",
    "create:users",
    "update:users",
    "delete:users",
]


def demo_tenant() -> dict[str, Any]:
    """A fresh copy of the demo tenant file, to change before starting an emulator with it."""
    text = resources.files("emulator").joinpath("demo_tenant.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return copy.deepcopy(data)


def client_for(emulator: RunningEmulator) -> httpx.AsyncClient:
    """An HTTP client aimed at the emulator (use it in ``async with``)."""
    return httpx.AsyncClient(base_url=emulator.url, timeout=10)


def login_body(
    user: tuple[str, str] = ADMIN,
    scope: str | None = "openid profile email offline_access",
    **changes: Any,
) -> dict[str, Any]:
    """A password-realm request for the demo client and API; ``changes`` override fields."""
    body: dict[str, Any] = {
        "grant_type": REALM_GRANT,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": user[0],
        "password": user[1],
        "realm": REALM,
        "audience": API,
        "scope": scope,
    }
    body.update(changes)
    return body


async def login(
    http: httpx.AsyncClient, user: tuple[str, str] = ADMIN, **changes: Any
) -> dict[str, Any]:
    """Log in successfully and return the token response."""
    response = await http.post("/oauth/token", json=login_body(user, **changes))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(
    http: httpx.AsyncClient, token: str, client_id: str = CLIENT_ID, **changes: Any
) -> httpx.Response:
    """Exchange a refresh token (demo client secret unless ``changes`` say otherwise)."""
    body: dict[str, Any] = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": CLIENT_SECRET,
        "refresh_token": token,
    }
    body.update(changes)
    return await http.post("/oauth/token", json=body)


def claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def assert_error(response: httpx.Response, status: int, error: str, description: str) -> None:
    """An Authentication API error answer, checked exactly."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_description"] == description
