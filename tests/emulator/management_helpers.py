"""Helpers shared by the Management API tests (this module holds no tests).

Tokens come from the emulator's own ``client_credentials`` grant, as a real caller gets them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import httpx

from emulator.state import MANAGEMENT_SCOPES
from tests.conftest import RunningEmulator, start_emulator
from tests.emulator.auth_helpers import CLIENT_ID, CLIENT_SECRET, client_for, demo_tenant

Factory = Callable[[dict[str, Any] | None], RunningEmulator]
Json = dict[str, Any]


def management_tenant(**limits: Any) -> Json:
    """The demo tenant with the Management API rate limit off (``limits`` override that)."""
    data = demo_tenant()
    data["limits"].update({"management_enabled": False, **limits})
    return data


def management_audience(running: RunningEmulator) -> str:
    """``<issuer>api/v2/``."""
    return f"{running.issuer}api/v2/"


def token_request(
    running: RunningEmulator, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET
) -> Json:
    """The ``client_credentials`` request for a Management API token."""
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
        "audience": management_audience(running),
    }


async def management_token(
    running: RunningEmulator, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET
) -> str:
    """A Management API token from ``POST /oauth/token`` (client credentials)."""
    async with client_for(running) as http:
        response = await http.post(
            "/oauth/token", json=token_request(running, client_id, client_secret)
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def management_client(running: RunningEmulator, token: str | None) -> httpx.AsyncClient:
    """An HTTP client for ``/api/v2`` sending ``token`` (none when None); use in ``async with``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=f"{running.url}/api/v2", headers=headers, timeout=10)


def admin_token(running: RunningEmulator) -> str:
    """Give the demo client every Management scope (through the API) and return such a token.

    The demo grant lacks the ``delete:*`` and ``read:roles`` scopes. Synchronous, for fixtures
    (the emulator serves from its own thread).
    """
    with httpx.Client(base_url=running.url, timeout=10) as http:
        token = http.post("/oauth/token", json=token_request(running)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        listed = http.get(
            "/api/v2/client-grants",
            params={"client_id": CLIENT_ID, "audience": management_audience(running)},
            headers=headers,
        )
        assert listed.status_code == 200, listed.text
        patched = http.patch(
            f"/api/v2/client-grants/{listed.json()[0]['id']}",
            json={"scope": MANAGEMENT_SCOPES},
            headers=headers,
        )
        assert patched.status_code == 200, patched.text
        widened: str = http.post("/oauth/token", json=token_request(running)).json()["access_token"]
    return widened


@contextmanager
def shared_emulator(data: Json | None = None) -> Iterator[tuple[RunningEmulator, str]]:
    """An emulator (management tenant unless ``data``) and an admin token, for a wider scope.

    Tests sharing one must leave its tenant as they found it.
    """
    running = start_emulator(data or management_tenant())
    try:
        yield running, admin_token(running)
    finally:
        running.server.stop()


def assert_management_error(
    response: httpx.Response,
    status: int,
    message: str,
    error_code: str | None,
    **extra: Any,
) -> None:
    """A Management API error answer, checked exactly (``extra``: e.g. ``attributes``)."""
    assert response.status_code == status, response.text
    expected: Json = {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message}
    if error_code is not None:
        expected["errorCode"] = error_code
    expected.update(extra)
    assert response.json() == expected


async def client_with_scopes(
    api: httpx.AsyncClient, running: RunningEmulator, scopes: list[str]
) -> str:
    """Create an M2M application granted ``scopes`` on the Management API; return its token."""
    created = await api.post("/clients", json={"name": "scoped", "app_type": "non_interactive"})
    assert created.status_code == 201, created.text
    client = created.json()
    granted = await api.post(
        "/client-grants",
        json={
            "client_id": client["client_id"],
            "audience": management_audience(running),
            "scope": scopes,
        },
    )
    assert granted.status_code == 201, granted.text
    return await management_token(running, client["client_id"], client["client_secret"])
