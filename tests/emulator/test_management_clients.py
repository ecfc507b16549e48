"""``/api/v2/clients`` and ``/api/v2/client-grants``, over real HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from emulator.state import MANAGEMENT_SCOPES
from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import CLIENT_ID, client_for
from tests.emulator.management_helpers import (
    Json,
    assert_management_error,
    management_audience,
    management_client,
    management_token,
    token_request,
)

VENUE_API = "https://api.venues.local"
SUBSET = "Payload validation error: scope must be a subset of resource server scopes"


async def create_client(api: httpx.AsyncClient, **fields: object) -> Json:
    """Create an application and return its JSON."""
    response = await api.post("/clients", json={"name": "Box office", **fields})
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


class TestCreateClient:
    async def test_generated_credentials_and_shape(self, api: httpx.AsyncClient) -> None:
        body = await create_client(
            api,
            app_type="non_interactive",
            callbacks=["https://box.example/cb"],
            client_metadata={"team": "ops"},
        )
        assert re.fullmatch(r"[A-Za-z0-9]{32}", body["client_id"])
        assert len(body["client_secret"]) >= 32
        assert body["name"] == "Box office"
        assert body["app_type"] == "non_interactive"
        assert body["token_endpoint_auth_method"] == "client_secret_post"
        assert body["grant_types"] == [
            "implicit",
            "authorization_code",
            "refresh_token",
            "client_credentials",
        ]
        assert body["global"] is False
        assert body["tenant"] == "emulator"
        assert body["callbacks"] == ["https://box.example/cb"]
        assert body["client_metadata"] == {"team": "ops"}
        assert body["signing_keys"][0]["cert"].startswith("-----BEGIN CERTIFICATE-----")
        for name in (
            "is_token_endpoint_ip_header_trusted",
            "is_first_party",
            "oidc_conformant",
            "jwt_configuration",
            "refresh_token",
        ):
            assert name in body

    async def test_public_app_defaults(self, api: httpx.AsyncClient) -> None:
        body = await create_client(api, app_type="spa")
        assert body["token_endpoint_auth_method"] == "none"
        assert "client_credentials" not in body["grant_types"]

    async def test_created_client_gets_tokens_once_granted(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        client = await create_client(api, client_id="box-office", client_secret="box-secret")
        assert client["client_id"] == "box-office"
        assert client["client_secret"] == "box-secret"
        granted = await api.post(
            "/client-grants",
            json={"client_id": "box-office", "audience": VENUE_API, "scope": ["read:venues"]},
        )
        assert granted.status_code == 201
        async with client_for(running) as http:
            response = await http.post(
                "/oauth/token",
                json={**token_request(running, "box-office", "box-secret"), "audience": VENUE_API},
            )
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == "read:venues"

    async def test_duplicate_client_id(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.post("/clients", json={"name": "x", "client_id": CLIENT_ID})
        assert_management_error(
            response, 409, "A client with this client_id already exists", "conflict"
        )

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({}, "'Missing required property: name'."),
            ({"name": ""}, "'String is too short (0 chars), minimum 1' on property name."),
            (
                {"name": "<script>"},
                "'String does not match pattern ^[^<>]+$: <script>' on property name.",
            ),
            (
                {"name": "x", "token_endpoint_auth_method": "private_key"},
                "'No enum match for: \"private_key\"' on property token_endpoint_auth_method.",
            ),
            (
                {"name": "x", "grant_types": ["client_credentials", "magic"]},
                "'No enum match for: \"magic\"' on property grant_types[1].",
            ),
            (
                {"name": "x", "refresh_token": {"rotation_type": "sometimes"}},
                "'No enum match for: \"sometimes\"' on property refresh_token.rotation_type.",
            ),
            (
                {"name": "x", "is_first_party": "yes"},
                "'Expected type boolean but found type string' on property is_first_party.",
            ),
            ({"name": "x", "global": True}, "'Additional properties not allowed: global'."),
        ],
    )
    async def test_invalid_bodies(
        self, shared_api: httpx.AsyncClient, body: Json, message: str
    ) -> None:
        response = await shared_api.post("/clients", json=body)
        assert_management_error(
            response, 400, f"Payload validation error: {message}", "invalid_body"
        )


class TestReadClients:
    async def test_list_forms(self, shared_api: httpx.AsyncClient) -> None:
        bare = await shared_api.get("/clients")
        totals = await shared_api.get("/clients", params={"include_totals": "true"})
        paged = await shared_api.get(
            "/clients", params={"include_totals": "true", "page": 1, "per_page": 1}
        )
        assert [c["client_id"] for c in bare.json()] == [CLIENT_ID]
        assert set(totals.json()) == {"start", "limit", "total", "clients"}
        assert totals.json()["total"] == 1
        assert paged.json()["start"] == 1
        assert paged.json()["clients"] == []

    async def test_filters_and_fields(self, shared_api: httpx.AsyncClient) -> None:
        spa = await shared_api.get("/clients", params={"app_type": "spa"})
        fields = await shared_api.get("/clients", params={"fields": "client_id,name"})
        assert spa.json() == []
        assert fields.json() == [{"client_id": CLIENT_ID, "name": "venues-local"}]

    async def test_get_one_and_unknown(self, shared_api: httpx.AsyncClient) -> None:
        found = await shared_api.get(f"/clients/{CLIENT_ID}")
        missing = await shared_api.get("/clients/nope")
        assert found.json()["client_secret"] == "local-gateway-secret"
        assert found.json()["refresh_token"]["rotation_type"] == "rotating"
        assert_management_error(missing, 404, "The client does not exist", "inexistent_client")


class TestUpdateClient:
    async def test_refresh_token_changes_field_by_field(self, api: httpx.AsyncClient) -> None:
        response = await api.patch(
            f"/clients/{CLIENT_ID}",
            json={"refresh_token": {"leeway": 5}, "name": "renamed", "web_origins": ["x"]},
        )
        body = response.json()
        assert response.status_code == 200
        assert body["refresh_token"]["leeway"] == 5
        assert body["refresh_token"]["rotation_type"] == "rotating"  # kept
        assert body["refresh_token"]["token_lifetime"] == 2592000  # kept
        assert body["name"] == "renamed"
        assert body["web_origins"] == ["x"]
        assert (await api.get(f"/clients/{CLIENT_ID}")).json()["refresh_token"]["leeway"] == 5

    async def test_rotation_change_reaches_the_token_endpoint(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        await api.patch(f"/clients/{CLIENT_ID}", json={"refresh_token": {"leeway": 0}})
        assert running.tenant.clients[CLIENT_ID].refresh_token["leeway"] == 0
        await api.patch(
            f"/clients/{CLIENT_ID}", json={"refresh_token": {"rotation_type": "non-rotating"}}
        )
        assert not running.tenant.clients[CLIENT_ID].rotates_refresh_tokens

    async def test_client_metadata_merges(self, api: httpx.AsyncClient) -> None:
        client = await create_client(api, client_metadata={"a": "1", "b": "2"})
        response = await api.patch(
            f"/clients/{client['client_id']}", json={"client_metadata": {"a": None, "c": "3"}}
        )
        assert response.json()["client_metadata"] == {"b": "2", "c": "3"}

    async def test_immutable_and_unknown(self, shared_api: httpx.AsyncClient) -> None:
        immutable = await shared_api.patch(f"/clients/{CLIENT_ID}", json={"client_id": "x"})
        unknown = await shared_api.patch("/clients/nope", json={"name": "x"})
        assert_management_error(
            immutable,
            400,
            "Payload validation error: 'Additional properties not allowed: client_id'.",
            "invalid_body",
        )
        assert_management_error(unknown, 404, "The client does not exist", "inexistent_client")


class TestDeleteClient:
    async def test_delete_removes_its_grants(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        client = await create_client(api)
        await api.post(
            "/client-grants",
            json={"client_id": client["client_id"], "audience": VENUE_API, "scope": []},
        )
        deleted = await api.delete(f"/clients/{client['client_id']}")
        again = await api.delete(f"/clients/{client['client_id']}")
        fetched = await api.get(f"/clients/{client['client_id']}")
        grants = await api.get("/client-grants", params={"client_id": client["client_id"]})
        assert deleted.status_code == 204
        assert again.status_code == 204
        assert fetched.status_code == 404
        assert grants.json() == []


class TestClientGrants:
    async def test_create_shape(self, api: httpx.AsyncClient) -> None:
        client = await create_client(api)
        response = await api.post(
            "/client-grants",
            json={
                "client_id": client["client_id"],
                "audience": VENUE_API,
                "scope": ["read:venues", "update:venues"],
            },
        )
        assert response.status_code == 201
        body = response.json()
        assert body["id"].startswith("cgr_")
        assert {k: v for k, v in body.items() if k != "id"} == {
            "client_id": client["client_id"],
            "audience": VENUE_API,
            "scope": ["read:venues", "update:venues"],
            "allow_any_organization": False,
            "is_system": False,
            "subject_type": "client",
            "allow_all_scopes": False,
        }

    async def test_scope_must_be_a_subset(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.post(
            "/client-grants",
            json={"client_id": CLIENT_ID, "audience": VENUE_API, "scope": ["launch:rockets"]},
        )
        assert_management_error(response, 400, SUBSET, "invalid_body")

    async def test_unknown_audience_client_and_duplicates(
        self, shared_api: httpx.AsyncClient, shared: tuple[RunningEmulator, str]
    ) -> None:
        unknown_api = await shared_api.post(
            "/client-grants",
            json={"client_id": CLIENT_ID, "audience": "https://nope", "scope": []},
        )
        unknown_client = await shared_api.post(
            "/client-grants", json={"client_id": "nope", "audience": VENUE_API, "scope": []}
        )
        duplicate = await shared_api.post(
            "/client-grants",
            json={"client_id": CLIENT_ID, "audience": management_audience(shared[0]), "scope": []},
        )
        missing = await shared_api.post(
            "/client-grants", json={"client_id": CLIENT_ID, "audience": VENUE_API}
        )
        assert_management_error(
            unknown_api,
            404,
            "No resource with identifier https://nope",
            "inexistent_resource_server",
        )
        assert_management_error(unknown_client, 404, "Client not found", "inexistent_client")
        assert_management_error(
            duplicate,
            409,
            "A client grant for this client and audience already exists.",
            "conflict",
        )
        assert_management_error(
            missing,
            400,
            "Payload validation error: 'Missing required property: scope'.",
            "invalid_body",
        )

    async def test_list_forms_and_filters(self, api: httpx.AsyncClient) -> None:
        for n in range(4):
            client = await create_client(api, name=f"c{n}")
            await api.post(
                "/client-grants",
                json={"client_id": client["client_id"], "audience": VENUE_API, "scope": []},
            )
        bare = await api.get("/client-grants")
        by_audience = await api.get("/client-grants", params={"audience": VENUE_API})
        by_client = await api.get("/client-grants", params={"client_id": CLIENT_ID})
        totals = await api.get(
            "/client-grants", params={"include_totals": "true", "per_page": 2, "page": 1}
        )
        assert len(bare.json()) == 5
        assert len(by_audience.json()) == 4
        assert [g["scope"] for g in by_client.json()] == [MANAGEMENT_SCOPES]
        assert {k: v for k, v in totals.json().items() if k != "client_grants"} == {
            "start": 2,
            "limit": 2,
            "total": 5,
        }
        assert len(totals.json()["client_grants"]) == 2

    async def test_checkpoint_pagination(self, api: httpx.AsyncClient) -> None:
        for n in range(4):
            client = await create_client(api, name=f"c{n}")
            await api.post(
                "/client-grants",
                json={"client_id": client["client_id"], "audience": VENUE_API, "scope": []},
            )
        seen: list[str] = []
        params: dict[str, str | int] = {"take": 2}
        pages = 0
        while True:
            page = (await api.get("/client-grants", params=params)).json()
            assert set(page) <= {"client_grants", "next"}
            seen += [g["id"] for g in page["client_grants"]]
            pages += 1
            if "next" not in page:
                break
            params = {"take": 2, "from": page["next"]}
        every = [g["id"] for g in (await api.get("/client-grants")).json()]
        assert pages == 3
        assert seen == every
        bad = await api.get("/client-grants", params={"from": "cgr_nope"})
        assert bad.status_code == 400
        assert bad.json()["errorCode"] == "invalid_query_string"

    async def test_update_and_delete(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        client = await create_client(api, app_type="non_interactive")
        grant = (
            await api.post(
                "/client-grants",
                json={
                    "client_id": client["client_id"],
                    "audience": management_audience(running),
                    "scope": ["read:users"],
                },
            )
        ).json()
        widened = await api.patch(
            f"/client-grants/{grant['id']}", json={"scope": ["read:users", "read:clients"]}
        )
        too_wide = await api.patch(f"/client-grants/{grant['id']}", json={"scope": ["root"]})
        unknown = await api.patch("/client-grants/cgr_nope", json={"scope": []})
        assert widened.json()["scope"] == ["read:users", "read:clients"]
        assert_management_error(too_wide, 400, SUBSET, "invalid_body")
        assert_management_error(
            unknown, 404, "The client grant does not exist", "inexistent_client_grant"
        )
        token = await management_token(running, client["client_id"], client["client_secret"])
        async with management_client(running, token) as m2m:
            assert (await m2m.get("/clients")).status_code == 200
        deleted = await api.delete(f"/client-grants/{grant['id']}")
        again = await api.delete(f"/client-grants/{grant['id']}")
        assert deleted.status_code == 204
        assert again.status_code == 204
        async with client_for(running) as http:
            refused = await http.post(
                "/oauth/token",
                json=token_request(running, client["client_id"], client["client_secret"]),
            )
        assert refused.status_code == 403
