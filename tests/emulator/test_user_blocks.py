"""``/api/v2/user-blocks`` and the other ways a brute-force block is lifted, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import ADMIN, REALM, VIEWER, client_for, login_body
from tests.emulator.management_helpers import (
    Factory,
    admin_token,
    assert_management_error,
    client_with_scopes,
    management_client,
    management_tenant,
)

VIEWER_ID = "auth0|demo-viewer"


@pytest.fixture
def running(emulator_factory: Factory) -> RunningEmulator:
    """The demo tenant: Management rate limit off, blocked after 2 failures."""
    return emulator_factory(management_tenant(brute_force_threshold=2))


@pytest.fixture
async def api(running: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """Every Management scope."""
    async with management_client(running, admin_token(running)) as client:
        yield client


def blocks_path(user_id: str = VIEWER_ID) -> str:
    """``/user-blocks/<id>`` with the ``|`` percent-encoded."""
    return f"/user-blocks/{quote(user_id, safe='')}"


async def attempt(
    running: RunningEmulator, *, right: bool, ip: str, user: tuple[str, str] = VIEWER
) -> int:
    """A password-realm login from ``ip`` (the demo client trusts the header); its status."""
    body = login_body(user, password=user[1] if right else "Wrong-Passw0rd!")
    async with client_for(running) as http:
        response = await http.post("/oauth/token", json=body, headers={"auth0-forwarded-for": ip})
    return response.status_code


async def block(running: RunningEmulator, ip: str, user: tuple[str, str] = VIEWER) -> None:
    """Fail twice from ``ip``: the user is then blocked from it."""
    for _ in range(2):
        assert await attempt(running, right=False, ip=ip, user=user) == 403
    assert await attempt(running, right=True, ip=ip, user=user) == 429


class TestList:
    async def test_by_user_id(self, running: RunningEmulator, api: httpx.AsyncClient) -> None:
        await block(running, "203.0.113.7")
        await block(running, "198.51.100.9")
        # one failure is no block
        assert await attempt(running, right=False, ip="192.0.2.1") == 403
        response = await api.get(blocks_path())
        assert response.status_code == 200
        assert response.json() == {
            "blocked_for": [
                {"identifier": VIEWER[0], "ip": "203.0.113.7", "connection": REALM},
                {"identifier": VIEWER[0], "ip": "198.51.100.9", "connection": REALM},
            ]
        }

    async def test_by_identifier(self, running: RunningEmulator, api: httpx.AsyncClient) -> None:
        await block(running, "203.0.113.7")
        await block(running, "203.0.113.7", ADMIN)
        response = await api.get(
            "/user-blocks",
            params={"identifier": VIEWER[0].upper(), "consider_brute_force_enablement": "true"},
        )
        assert response.status_code == 200
        assert response.json() == {
            "blocked_for": [{"identifier": VIEWER[0], "ip": "203.0.113.7", "connection": REALM}]
        }

    async def test_nothing_blocked(self, api: httpx.AsyncClient) -> None:
        assert (await api.get(blocks_path())).json() == {"blocked_for": []}
        response = await api.get("/user-blocks", params={"identifier": "nobody@venues.local"})
        assert response.json() == {"blocked_for": []}

    async def test_unknown_user_is_404(self, api: httpx.AsyncClient) -> None:
        response = await api.get(blocks_path("auth0|nobody"))
        assert_management_error(response, 404, "The user does not exist.", "inexistent_user")

    async def test_identifier_is_required(self, api: httpx.AsyncClient) -> None:
        response = await api.get("/user-blocks")
        assert response.status_code == 400
        assert response.json()["errorCode"] == "invalid_query_string"


class TestLift:
    async def test_by_user_id(self, running: RunningEmulator, api: httpx.AsyncClient) -> None:
        await block(running, "203.0.113.7")
        await block(running, "198.51.100.9")
        assert (await api.delete(blocks_path())).status_code == 204
        assert (await api.get(blocks_path())).json() == {"blocked_for": []}
        assert await attempt(running, right=True, ip="203.0.113.7") == 200
        assert await attempt(running, right=True, ip="198.51.100.9") == 200

    async def test_by_identifier(self, running: RunningEmulator, api: httpx.AsyncClient) -> None:
        await block(running, "203.0.113.7")
        await block(running, "203.0.113.7", ADMIN)
        response = await api.delete("/user-blocks", params={"identifier": VIEWER[0]})
        assert response.status_code == 204
        assert await attempt(running, right=True, ip="203.0.113.7") == 200
        assert await attempt(running, right=True, ip="203.0.113.7", user=ADMIN) == 429

    async def test_unknown_user_by_id_is_404(self, api: httpx.AsyncClient) -> None:
        response = await api.delete(blocks_path("auth0|nobody"))
        assert_management_error(response, 404, "The user does not exist.", "inexistent_user")

    async def test_unknown_identifier_is_no_error(self, api: httpx.AsyncClient) -> None:
        response = await api.delete("/user-blocks", params={"identifier": "nobody@venues.local"})
        assert response.status_code == 204

    async def test_password_change_lifts_it(
        self, running: RunningEmulator, api: httpx.AsyncClient
    ) -> None:
        await block(running, "203.0.113.7")
        patched = await api.patch(
            f"/users/{quote(VIEWER_ID, safe='')}", json={"password": "N3w-Passw0rd!"}
        )
        assert patched.status_code == 200
        new = (VIEWER[0], "N3w-Passw0rd!")
        assert await attempt(running, right=True, ip="203.0.113.7", user=new) == 200

    @pytest.mark.parametrize("change", [{"blocked": False}, {"name": "Renamed"}])
    async def test_other_changes_do_not(
        self, running: RunningEmulator, api: httpx.AsyncClient, change: dict[str, object]
    ) -> None:
        await block(running, "203.0.113.7")
        patched = await api.patch(f"/users/{quote(VIEWER_ID, safe='')}", json=change)
        assert patched.status_code == 200
        assert await attempt(running, right=True, ip="203.0.113.7") == 429


class TestScopes:
    async def test_reading_needs_read_users(
        self, running: RunningEmulator, api: httpx.AsyncClient
    ) -> None:
        token = await client_with_scopes(api, running, ["update:users"])
        async with management_client(running, token) as scoped:
            response = await scoped.get(blocks_path())
        assert_management_error(
            response, 403, "Insufficient scope, expected any of: read:users", "insufficient_scope"
        )

    async def test_lifting_needs_update_users(
        self, running: RunningEmulator, api: httpx.AsyncClient
    ) -> None:
        await block(running, "203.0.113.7")
        token = await client_with_scopes(api, running, ["read:users"])
        async with management_client(running, token) as scoped:
            assert (await scoped.get(blocks_path())).status_code == 200
            for response in (
                await scoped.delete(blocks_path()),
                await scoped.delete("/user-blocks", params={"identifier": VIEWER[0]}),
            ):
                assert_management_error(
                    response,
                    403,
                    "Insufficient scope, expected any of: update:users",
                    "insufficient_scope",
                )
        assert await attempt(running, right=True, ip="203.0.113.7") == 429

    async def test_no_token_is_401(self, running: RunningEmulator) -> None:
        async with management_client(running, None) as anonymous:
            response = await anonymous.get(blocks_path())
        assert response.status_code == 401
