"""``/api/v2/resource-servers`` and ``/api/v2/tenants/settings``, over real HTTP."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import CLIENT_ID, client_for, login_body
from tests.emulator.management_helpers import (
    Json,
    assert_management_error,
    client_with_scopes,
    management_audience,
    management_client,
)

VENUE_API = "https://api.venues.local"
ORDERS_ID = "https://orders.example"
ORDERS: Json = {
    "identifier": ORDERS_ID,
    "name": "Orders",
    "scopes": [{"value": "read:orders", "description": "Read orders"}],
    "allow_offline_access": True,
    "token_lifetime": 600,
}


def encoded(identifier: str) -> str:
    """``/resource-servers/<URL-encoded identifier>``."""
    return f"/resource-servers/{quote(identifier, safe='')}"


class TestResourceServers:
    async def test_list_has_the_system_api(
        self, shared_api: httpx.AsyncClient, shared: tuple[RunningEmulator, str]
    ) -> None:
        bare = await shared_api.get("/resource-servers")
        totals = await shared_api.get("/resource-servers", params={"include_totals": "true"})
        by_identifier = {api["identifier"]: api for api in bare.json()}
        system = by_identifier[management_audience(shared[0])]
        assert system["is_system"] is True
        assert system["name"] == "Auth0 Management API"
        assert {"value": "read:users", "description": "read:users"} in system["scopes"]
        assert by_identifier[VENUE_API]["is_system"] is False
        assert set(totals.json()) == {"start", "limit", "total", "resource_servers"}
        assert totals.json()["total"] == 2

    async def test_create_read_update_delete(self, api: httpx.AsyncClient) -> None:
        created = await api.post("/resource-servers", json=ORDERS)
        assert created.status_code == 201, created.text
        body = created.json()
        assert {k: body[k] for k in ORDERS} == ORDERS
        assert body["signing_alg"] == "RS256"
        assert body["token_dialect"] == "access_token"
        by_id = await api.get(f"/resource-servers/{body['id']}")
        by_identifier = await api.get(encoded(ORDERS_ID))
        assert by_id.json() == body
        assert by_identifier.json() == body
        patched = await api.patch(
            encoded(ORDERS_ID),
            json={"enforce_policies": True, "token_dialect": "access_token_authz"},
        )
        assert patched.json()["enforce_policies"] is True
        assert patched.json()["token_dialect"] == "access_token_authz"
        assert patched.json()["token_lifetime"] == 600
        deleted = await api.delete(f"/resource-servers/{body['id']}")
        again = await api.delete(f"/resource-servers/{body['id']}")
        gone = await api.get(f"/resource-servers/{body['id']}")
        assert deleted.status_code == 204
        assert again.status_code == 204
        assert_management_error(
            gone, 404, "The resource server does not exist", "inexistent_resource_server"
        )

    async def test_hs256_gets_a_secret(self, api: httpx.AsyncClient) -> None:
        created = await api.post(
            "/resource-servers", json={"identifier": "urn:hs", "signing_alg": "HS256"}
        )
        assert created.json()["name"] == "urn:hs"
        assert len(created.json()["signing_secret"]) >= 16

    async def test_new_api_is_usable_for_tokens(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        await api.post("/resource-servers", json=ORDERS)
        await api.post(
            "/client-grants",
            json={
                "client_id": CLIENT_ID,
                "audience": ORDERS_ID,
                "scope": ["read:orders"],
            },
        )
        async with client_for(running) as http:
            response = await http.post(
                "/oauth/token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": "local-gateway-secret",
                    "audience": ORDERS_ID,
                },
            )
        assert response.status_code == 200, response.text
        assert response.json()["expires_in"] == 600

    async def test_delete_removes_grants_to_it(self, api: httpx.AsyncClient) -> None:
        await api.post("/resource-servers", json=ORDERS)
        await api.post(
            "/client-grants",
            json={"client_id": CLIENT_ID, "audience": ORDERS_ID, "scope": []},
        )
        await api.delete(encoded(ORDERS_ID))
        grants = await api.get("/client-grants", params={"audience": ORDERS_ID})
        assert grants.json() == []

    @pytest.mark.parametrize(
        ("body", "status", "message", "code"),
        [
            (
                {"name": "x"},
                400,
                "Payload validation error: 'Missing required property: identifier'.",
                "invalid_body",
            ),
            (
                {"identifier": VENUE_API},
                409,
                "A resource server with the same identifier already exists",
                "conflict",
            ),
            (
                {"identifier": "urn:x", "token_dialect": "jwt"},
                400,
                "Payload validation error: 'No enum match for: \"jwt\"' on property token_dialect.",
                "invalid_body",
            ),
            (
                {"identifier": "urn:x", "scopes": [{"description": "no value"}]},
                400,
                "Payload validation error: 'Missing required property: value' on property "
                "scopes[0].",
                "invalid_body",
            ),
        ],
    )
    async def test_invalid_creates(
        self, shared_api: httpx.AsyncClient, body: Json, status: int, message: str, code: str
    ) -> None:
        response = await shared_api.post("/resource-servers", json=body)
        assert_management_error(response, status, message, code)

    async def test_identifier_is_immutable(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.patch(encoded(VENUE_API), json={"identifier": "urn:other"})
        assert_management_error(
            response,
            400,
            "Payload validation error: 'Additional properties not allowed: identifier'.",
            "invalid_body",
        )

    async def test_system_api_is_protected(
        self, shared_api: httpx.AsyncClient, shared: tuple[RunningEmulator, str]
    ) -> None:
        path = encoded(management_audience(shared[0]))
        renamed = await shared_api.patch(path, json={"name": "Mine now"})
        deleted = await shared_api.delete(path)
        assert_management_error(
            renamed, 403, "You cannot update the Auth0 Management API", "operation_not_supported"
        )
        assert_management_error(
            deleted, 403, "You cannot delete the Auth0 Management API", "operation_not_supported"
        )

    async def test_system_api_token_lifetime_can_change(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        response = await api.patch(
            encoded(management_audience(running)), json={"token_lifetime": 3600}
        )
        assert response.status_code == 200
        assert response.json()["token_lifetime"] == 3600


class TestTenantSettings:
    async def test_get(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.get("/tenants/settings")
        assert response.json() == {
            "friendly_name": "venue-gateway demo tenant",
            "default_directory": "Username-Password-Authentication",
            "session_lifetime": 168,
            "idle_session_lifetime": 72,
            "flags": {"revoke_refresh_token_grant": False, "remove_alg_from_jwks": False},
        }

    async def test_patch_merges_flags(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        response = await api.patch(
            "/tenants/settings",
            json={
                "friendly_name": "Renamed",
                "default_audience": VENUE_API,
                "session_lifetime": 24,
                "flags": {"remove_alg_from_jwks": True},
                "support_email": "help@venues.local",
            },
        )
        body = response.json()
        assert body["friendly_name"] == "Renamed"
        assert body["default_audience"] == VENUE_API
        assert body["session_lifetime"] == 24
        assert body["flags"] == {"revoke_refresh_token_grant": False, "remove_alg_from_jwks": True}
        assert body["support_email"] == "help@venues.local"
        async with client_for(running) as http:
            jwks = (await http.get("/.well-known/jwks.json")).json()
        assert "alg" not in jwks["keys"][0]

    async def test_default_directory(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        unknown = await api.patch("/tenants/settings", json={"default_directory": "nope"})
        assert_management_error(
            unknown, 400, "The connection does not exist.", "inexistent_connection"
        )
        cleared = await api.patch("/tenants/settings", json={"default_directory": None})
        assert "default_directory" not in cleared.json()
        assert running.tenant.settings.default_directory is None
        async with client_for(running) as http:
            body = login_body(grant_type="password")
            del body["realm"]
            response = await http.post("/oauth/token", json=body)
        assert response.json()["error"] == "server_error"

    async def test_invalid(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.patch("/tenants/settings", json={"flags": {"x": "on"}})
        assert_management_error(
            response,
            400,
            "Payload validation error: 'Expected type boolean but found type string' "
            "on property flags.x.",
            "invalid_body",
        )

    async def test_scopes(self, api: httpx.AsyncClient, running: RunningEmulator) -> None:
        token = await client_with_scopes(api, running, ["read:users"])
        async with management_client(running, token) as limited:
            read = await limited.get("/tenants/settings")
            update = await limited.patch("/tenants/settings", json={})
        assert_management_error(
            read,
            403,
            "Insufficient scope, expected any of: read:tenant_settings",
            "insufficient_scope",
        )
        assert_management_error(
            update,
            403,
            "Insufficient scope, expected any of: update:tenant_settings",
            "insufficient_scope",
        )
