"""Admin ``/users`` routes: each with and without its permission, search, block, delete."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningEmulator
from tests.e2e.conftest import ADMIN, VIEWER, bearer, login
from tests.users.routes.helpers import login_as, me, sign_up


@pytest.fixture
async def admin(gateway: httpx.AsyncClient) -> dict[str, str]:
    """Headers of an admin (every ``*:users`` permission)."""
    return bearer(await login(gateway, ADMIN))


@pytest.fixture
async def viewer(gateway: httpx.AsyncClient) -> dict[str, str]:
    """Headers of a viewer (``read:venues`` only)."""
    return bearer(await login(gateway, VIEWER))


def user_url(user_id: str) -> str:
    """``/users/<id>`` with the ``|`` URL-encoded, as a client must send it."""
    return f"/users/{quote(user_id, safe='')}"


class TestListUsers:
    async def test_anonymous_is_401(self, gateway: httpx.AsyncClient) -> None:
        assert (await gateway.get("/users")).status_code == 401

    async def test_without_read_users_is_403(
        self, gateway: httpx.AsyncClient, viewer: dict[str, str]
    ) -> None:
        response = await gateway.get("/users", headers=viewer)
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
        assert 'scope="read:users"' in response.headers["www-authenticate"]

    async def test_searches_and_pages(
        self, gateway: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        _, _, created = await sign_up(gateway)
        response = await gateway.get(
            "/users", headers=admin, params={"q": f'email:"{created["email"]}"'}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == 1
        assert [u["user_id"] for u in body["users"]] == [created["user_id"]]
        assert body["users"][0]["blocked"] is False
        assert body["users"][0]["identities"] == [
            {
                "connection": "Username-Password-Authentication",
                "provider": "auth0",
                "is_social": False,
            }
        ]

        paged = await gateway.get("/users", headers=admin, params={"page": 1, "per_page": 2})
        assert paged.status_code == 200
        assert paged.json()["total"] == 3
        assert len(paged.json()["users"]) == 1
        assert paged.json()["page"] == 1

    async def test_bad_paging_is_422(
        self, gateway: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        for params in ({"per_page": 51}, {"per_page": 0}, {"page": -1}):
            assert (await gateway.get("/users", headers=admin, params=params)).status_code == 422

    async def test_a_malformed_query_is_400(
        self, gateway: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await gateway.get("/users", headers=admin, params={"q": "email:(oops"})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


class TestGetUser:
    async def test_without_read_users_is_403(
        self, gateway: httpx.AsyncClient, viewer: dict[str, str]
    ) -> None:
        response = await gateway.get(user_url("auth0|demo-admin"), headers=viewer)
        assert response.status_code == 403

    async def test_the_id_is_url_encoded_toward_auth0(
        self,
        gateway: httpx.AsyncClient,
        admin: dict[str, str],
        emulator_http: httpx.AsyncClient,
    ) -> None:
        response = await gateway.get(user_url("auth0|demo-viewer"), headers=admin)
        assert response.status_code == 200
        assert response.json()["email"] == VIEWER[0]
        stats = (await emulator_http.get("/__emulator/stats")).json()["requests"]
        assert stats.get("GET /api/v2/users/{user_id}") == 1

    async def test_unknown_is_404(self, gateway: httpx.AsyncClient, admin: dict[str, str]) -> None:
        response = await gateway.get(user_url("auth0|nobody"), headers=admin)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


class TestUpdateUser:
    async def test_without_update_users_is_403(
        self, gateway: httpx.AsyncClient, viewer: dict[str, str]
    ) -> None:
        response = await gateway.patch(
            user_url("auth0|demo-viewer"), headers=viewer, json={"blocked": True}
        )
        assert response.status_code == 403

    async def test_block_ends_the_sessions_and_unblock_lets_them_in(
        self, gateway: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        email, password, created = await sign_up(gateway)
        token = await login_as(gateway, email, password)

        response = await gateway.patch(
            user_url(created["user_id"]), headers=admin, json={"blocked": True}
        )
        assert response.status_code == 200, response.text
        assert response.json()["blocked"] is True
        assert (await me(gateway, token)).status_code == 401
        refused = await gateway.post("/auth/login", json={"username": email, "password": password})
        assert refused.status_code == 403
        assert refused.json()["error"] == "user_blocked"

        response = await gateway.patch(
            user_url(created["user_id"]), headers=admin, json={"blocked": False}
        )
        assert response.status_code == 200
        assert response.json()["blocked"] is False
        assert await login_as(gateway, email, password)

    async def test_changes_profile_and_app_metadata(
        self, gateway: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        _, _, created = await sign_up(gateway)
        response = await gateway.patch(
            user_url(created["user_id"]),
            headers=admin,
            json={"name": "Renamed", "app_metadata": {"plan": "gold"}, "email_verified": True},
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["name"], body["app_metadata"], body["email_verified"]) == (
            "Renamed",
            {"plan": "gold"},
            True,
        )

    async def test_unknown_fields_are_422(
        self, gateway: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await gateway.patch(
            user_url("auth0|demo-viewer"), headers=admin, json={"password": "x", "name": "y"}
        )
        assert response.status_code == 422


class TestDeleteUser:
    async def test_without_delete_users_is_403(
        self, gateway: httpx.AsyncClient, viewer: dict[str, str], emulator: RunningEmulator
    ) -> None:
        response = await gateway.delete(user_url("auth0|demo-admin"), headers=viewer)
        assert response.status_code == 403
        assert "auth0|demo-admin" in emulator.tenant.users

    async def test_deletes_and_ends_the_users_sessions(
        self, gateway: httpx.AsyncClient, admin: dict[str, str], emulator: RunningEmulator
    ) -> None:
        email, password, created = await sign_up(gateway)
        token = await login_as(gateway, email, password)
        response = await gateway.delete(user_url(created["user_id"]), headers=admin)
        assert response.status_code == 204
        assert created["user_id"] not in emulator.tenant.users
        assert (await me(gateway, token)).status_code == 401
        gone = await gateway.get(user_url(created["user_id"]), headers=admin)
        assert gone.status_code == 404


class TestDotSegmentIds:
    @pytest.mark.parametrize("user_id", ["%2E", "%2E%2E"])
    async def test_dot_ids_never_reach_the_management_api(
        self,
        gateway: httpx.AsyncClient,
        admin: dict[str, str],
        emulator_http: httpx.AsyncClient,
        user_id: str,
    ) -> None:
        await emulator_http.post("/__emulator/stats/reset")
        for method in ("GET", "DELETE"):
            response = await gateway.request(method, f"/users/{user_id}", headers=admin)
            assert response.status_code == 422, response.text
        requests = (await emulator_http.get("/__emulator/stats")).json()["requests"]
        assert not any(key.startswith(("GET /api/v2", "DELETE /api/v2")) for key in requests)
