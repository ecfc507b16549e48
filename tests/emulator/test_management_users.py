"""``/api/v2/users``, ``/api/v2/users-by-email``, permissions and roles, over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from emulator.state import password_meets_policy
from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import REALM, client_for, login, login_body, refresh
from tests.emulator.management_helpers import (
    Factory,
    Json,
    admin_token,
    assert_management_error,
    management_client,
    management_tenant,
    shared_emulator,
)

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NEW_USER = {"connection": REALM, "email": "New.Person@Venues.Local", "password": "Str0ng-Pass"}
WEAK = "PasswordStrengthError: Password is too weak"


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[RunningEmulator, str]]:
    """One tenant for this module's tests that leave it unchanged: the demo users and one more."""
    data = management_tenant()
    data["users"].append(
        {
            "email": "custom@venues.local",
            "password": "Cust0m-Pass",
            "connection": REALM,
            "user_id": "auth0|custom",
            "app_metadata": {"plan": "gold"},
        }
    )
    with shared_emulator(data) as pair:
        yield pair


def user_path(user_id: str) -> str:
    """``/users/<id>`` with the ``|`` percent-encoded, as SDKs send it."""
    return f"/users/{quote(user_id, safe='')}"


async def create(api: httpx.AsyncClient, **changes: Any) -> Json:
    """Create a user (``NEW_USER`` with ``changes``) and return its JSON."""
    response = await api.post("/users", json={**NEW_USER, **changes})
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


class TestCreateUser:
    async def test_created_user_shape(self, api: httpx.AsyncClient) -> None:
        body = await create(api, user_metadata={"lang": "fr"}, given_name="New")
        assert set(body) == {
            "user_id",
            "email",
            "email_verified",
            "given_name",
            "name",
            "nickname",
            "picture",
            "created_at",
            "updated_at",
            "identities",
            "user_metadata",
            "app_metadata",
            "logins_count",
            "blocked",
        }
        assert body["user_id"].startswith("auth0|")
        assert body["email"] == "new.person@venues.local"  # Auth0 keeps emails in lower case
        assert body["identities"] == [
            {
                "connection": REALM,
                "user_id": body["user_id"].removeprefix("auth0|"),
                "provider": "auth0",
                "isSocial": False,
            }
        ]
        assert ISO.match(body["created_at"])
        assert ISO.match(body["updated_at"])
        assert body["user_metadata"] == {"lang": "fr"}
        assert body["app_metadata"] == {}
        assert body["email_verified"] is False
        assert body["blocked"] is False

    async def test_new_user_can_log_in(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        await create(api)
        async with client_for(running) as http:
            tokens = await login(http, ("new.person@venues.local", NEW_USER["password"]))
        assert "access_token" in tokens

    async def test_given_user_id_gets_the_provider_prefix(self, api: httpx.AsyncClient) -> None:
        body = await create(api, user_id="custom-42")
        assert body["user_id"] == "auth0|custom-42"
        duplicate = await api.post(
            "/users", json={**NEW_USER, "email": "other@venues.local", "user_id": "custom-42"}
        )
        assert_management_error(duplicate, 409, "The user already exists.", "auth0_idp_error")

    async def test_duplicate_email_in_the_connection(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.post("/users", json={**NEW_USER, "email": "ADMIN@venues.local"})
        assert_management_error(response, 409, "The user already exists.", "auth0_idp_error")

    async def test_unknown_connection(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.post("/users", json={**NEW_USER, "connection": "nope"})
        assert_management_error(
            response, 400, "The connection does not exist.", "inexistent_connection"
        )

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (
                {"email": "a@b.co", "password": "Str0ng-Pass"},
                "Payload validation error: 'Missing required property: connection'.",
            ),
            (
                {"connection": REALM, "password": "Str0ng-Pass"},
                "Payload validation error: 'Missing required property: email'.",
            ),
            (
                {"connection": REALM, "email": "a@b.co"},
                "Payload validation error: 'Missing required property: password'.",
            ),
            (
                {**NEW_USER, "email": "not-an-email"},
                "Payload validation error: 'Object didn't pass validation for format email: "
                "not-an-email' on property email.",
            ),
            (
                {**NEW_USER, "blocked": "yes"},
                "Payload validation error: 'Expected type boolean but found type string' "
                "on property blocked.",
            ),
            (
                {**NEW_USER, "role": "admin"},
                "Payload validation error: 'Additional properties not allowed: role'.",
            ),
        ],
    )
    async def test_invalid_bodies(
        self, shared_api: httpx.AsyncClient, body: Json, message: str
    ) -> None:
        response = await shared_api.post("/users", json=body)
        assert_management_error(response, 400, message, "invalid_body")

    async def test_weak_password(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.post("/users", json={**NEW_USER, "password": "alllowercase1"})
        assert_management_error(response, 400, WEAK, None)  # the live answer has no errorCode


POLICY_CASES = [
    ("none", "", "x"),
    ("low", "five5", "sixsix"),
    ("fair", "Abcdefg!", "Abcdefg1"),
    ("good", "abcdefg1", "abcdef1!"),
    ("excellent", "Abcdefgh1", "Abcdefgh1!"),
    ("excellent", "Abcccdefg1!", "Abccdefgh1!"),
]


class TestPasswordPolicy:
    @pytest.mark.parametrize(("policy", "weak", "strong"), POLICY_CASES)
    def test_rules(self, policy: str, weak: str, strong: str) -> None:
        assert not password_meets_policy(policy, weak)
        assert password_meets_policy(policy, strong)

    @pytest.mark.parametrize("policy", ["low", "good", "excellent"])
    async def test_policy_of_the_connection_applies_to_create_and_patch(
        self, emulator_factory: Factory, policy: str
    ) -> None:
        data = management_tenant()
        data["connections"].append({"name": "strict-db", "password_policy": policy})
        running = emulator_factory(data)
        weak, strong = next((w, s) for p, w, s in POLICY_CASES if p == policy)
        base = {"connection": "strict-db", "email": "p@venues.local"}
        token = await asyncio.to_thread(admin_token, running)
        async with management_client(running, token) as api:
            refused = await api.post("/users", json={**base, "password": weak})
            created = await api.post("/users", json={**base, "password": strong})
            path = user_path(created.json()["user_id"])
            patched_weak = await api.patch(path, json={"password": weak})
        assert_management_error(refused, 400, WEAK, None)
        assert created.status_code == 201
        assert_management_error(patched_weak, 400, WEAK, None)


class TestGetUser:
    async def test_by_url_encoded_id(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.get("/users/auth0%7Cdemo-admin")
        assert response.status_code == 200
        body = response.json()
        assert body["user_id"] == "auth0|demo-admin"
        assert body["email"] == "admin@venues.local"
        assert body["name"] == "Demo Admin"
        assert "password" not in response.text
        assert "argon2" not in response.text

    async def test_unknown(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.get("/users/auth0%7Cnobody")
        assert_management_error(response, 404, "The user does not exist.", "inexistent_user")

    async def test_fields(self, shared_api: httpx.AsyncClient) -> None:
        only = await shared_api.get("/users/auth0%7Cdemo-admin", params={"fields": "user_id,email"})
        without = await shared_api.get(
            "/users/auth0%7Cdemo-admin",
            params={"fields": "identities,picture", "include_fields": "false"},
        )
        assert only.json() == {"user_id": "auth0|demo-admin", "email": "admin@venues.local"}
        assert "identities" not in without.json()
        assert "picture" not in without.json()
        assert "email" in without.json()


class TestUpdateUser:
    async def test_metadata_merges_one_level_and_null_unsets(self, api: httpx.AsyncClient) -> None:
        user = await create(
            api,
            user_metadata={
                "lang": "fr",
                "theme": "dark",
                "address": {"home": "1 Rue", "work": "2"},
            },
            app_metadata={"plan": "free", "roles": ["a"]},
        )
        response = await api.patch(
            user_path(user["user_id"]),
            json={
                "user_metadata": {"theme": None, "address": {"home": "3 Ave"}, "new": 1},
                "app_metadata": {"plan": "pro"},
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["user_metadata"] == {"lang": "fr", "address": {"home": "3 Ave"}, "new": 1}
        assert body["app_metadata"] == {"plan": "pro", "roles": ["a"]}
        stored = (await api.get(user_path(user["user_id"]))).json()
        assert stored["user_metadata"] == body["user_metadata"]

    async def test_empty_object_clears_metadata(self, api: httpx.AsyncClient) -> None:
        user = await create(api, user_metadata={"lang": "fr"}, app_metadata={"plan": "free"})
        response = await api.patch(
            user_path(user["user_id"]), json={"user_metadata": {}, "app_metadata": None}
        )
        assert response.json()["user_metadata"] == {}
        assert response.json()["app_metadata"] == {}

    async def test_root_fields(self, api: httpx.AsyncClient, running: RunningEmulator) -> None:
        user = await create(api, given_name="Old", email_verified=True)
        async with client_for(running) as http:
            await http.post("/__emulator/clock", json={"offset_s": 60})
        response = await api.patch(
            user_path(user["user_id"]),
            json={"given_name": None, "nickname": "nick", "blocked": True, "email": "MOVED@x.io"},
        )
        body = response.json()
        assert "given_name" not in body
        assert body["nickname"] == "nick"
        assert body["blocked"] is True
        assert body["email"] == "moved@x.io"
        assert body["email_verified"] is False  # a new address is unverified
        assert body["updated_at"] > user["updated_at"]
        assert body["created_at"] == user["created_at"]

    async def test_password_change(self, api: httpx.AsyncClient, running: RunningEmulator) -> None:
        response = await api.patch(
            "/users/auth0%7Cdemo-viewer", json={"password": "N3w-Viewer-Pass"}
        )
        assert response.status_code == 200
        async with client_for(running) as http:
            old = await http.post("/oauth/token", json=login_body(("viewer@venues.local", "x")))
            new = await http.post(
                "/oauth/token", json=login_body(("viewer@venues.local", "N3w-Viewer-Pass"))
            )
        assert old.status_code == 403
        assert new.status_code == 200

    async def test_email_taken_by_another_user(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.patch(
            "/users/auth0%7Cdemo-viewer", json={"email": "admin@venues.local"}
        )
        assert_management_error(response, 409, "The user already exists.", "auth0_idp_error")

    async def test_invalid_and_unknown(self, shared_api: httpx.AsyncClient) -> None:
        unknown = await shared_api.patch("/users/auth0%7Cnobody", json={"name": "x"})
        extra = await shared_api.patch("/users/auth0%7Cdemo-viewer", json={"user_id": "x"})
        null_email = await shared_api.patch("/users/auth0%7Cdemo-viewer", json={"email": None})
        assert_management_error(unknown, 404, "The user does not exist.", "inexistent_user")
        assert_management_error(
            extra,
            400,
            "Payload validation error: 'Additional properties not allowed: user_id'.",
            "invalid_body",
        )
        assert_management_error(
            null_email,
            400,
            "Payload validation error: 'Expected type string but found type null' "
            "on property email.",
            "invalid_body",
        )


class TestDeleteUser:
    async def test_delete(self, api: httpx.AsyncClient) -> None:
        deleted = await api.delete("/users/auth0%7Cdemo-viewer")
        again = await api.delete("/users/auth0%7Cdemo-viewer")
        fetched = await api.get("/users/auth0%7Cdemo-viewer")
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert again.status_code == 204
        assert_management_error(fetched, 404, "The user does not exist.", "inexistent_user")

    async def test_refresh_tokens_of_a_deleted_user_stop_working(
        self, api: httpx.AsyncClient, running: RunningEmulator
    ) -> None:
        async with client_for(running) as http:
            tokens = await login(http)
            await api.delete("/users/auth0%7Cdemo-admin")
            response = await refresh(http, tokens["refresh_token"])
        assert response.status_code == 403
        assert response.json() == {
            "error": "invalid_grant",
            "error_description": (
                "The refresh_token was generated for a user who doesn't exist anymore."
            ),
        }


class TestListUsers:
    async def test_bare_array_and_totals(self, shared_api: httpx.AsyncClient) -> None:
        bare = await shared_api.get("/users")
        totals = await shared_api.get(
            "/users", params={"include_totals": "true", "page": 1, "per_page": 2}
        )
        assert isinstance(bare.json(), list)
        assert len(bare.json()) == 3
        body = totals.json()
        assert {k: v for k, v in body.items() if k != "users"} == {
            "start": 2,
            "limit": 2,
            "length": 1,
            "total": 3,
        }
        assert len(body["users"]) == 1

    async def test_per_page_maximum(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.get("/users", params={"per_page": 51})
        assert_management_error(
            response,
            400,
            "Query validation error: 'Value 51 is greater than maximum 50' on property per_page.",
            "invalid_query_string",
        )

    @pytest.mark.parametrize(
        ("q", "expected"),
        [
            ('email:"admin@venues.local"', ["auth0|demo-admin"]),
            ("email:ADMIN@venues.local", ["auth0|demo-admin"]),
            ('user_id:"auth0|demo-viewer"', ["auth0|demo-viewer"]),
            ("name:Demo*", ["auth0|demo-admin", "auth0|demo-viewer"]),
            ("name:demo* AND NOT email:viewer*", ["auth0|demo-admin"]),
            ("email:admin* OR email:viewer*", ["auth0|demo-admin", "auth0|demo-viewer"]),
            ('(name:"Demo Admin" OR name:nobody) AND email_verified:true', ["auth0|demo-admin"]),
            (
                "identities.connection:Username-Password-Authentication AND nickname:viewer",
                ["auth0|demo-viewer"],
            ),
            ("_exists_:app_metadata.plan", ["auth0|custom"]),
            ("app_metadata.plan:gold", ["auth0|custom"]),
            ("viewer*", ["auth0|demo-viewer"]),
            ("email:nobody@venues.local", []),
        ],
    )
    async def test_search(self, shared_api: httpx.AsyncClient, q: str, expected: list[str]) -> None:
        response = await shared_api.get("/users", params={"q": q, "search_engine": "v3"})
        assert response.status_code == 200, response.text
        assert sorted(u["user_id"] for u in response.json()) == expected

    @pytest.mark.parametrize("q", ['email:"unterminated', "(name:x", "name:x)", "AND"])
    async def test_malformed_query(self, shared_api: httpx.AsyncClient, q: str) -> None:
        response = await shared_api.get("/users", params={"q": q, "search_engine": "v3"})
        assert response.status_code == 400
        assert response.json()["errorCode"] == "invalid_query_string"

    @pytest.mark.parametrize(
        "q", ["(" * 500 + "name:x" + ")" * 500, "NOT " * 1000 + "name:x", "(" * 2000]
    )
    async def test_deeply_nested_query_is_400(self, shared_api: httpx.AsyncClient, q: str) -> None:
        response = await shared_api.get("/users", params={"q": q, "search_engine": "v3"})
        assert_management_error(
            response,
            400,
            "Query validation error: "
            "'Invalid query string: nested more than 32 deep' on property q.",
            "invalid_query_string",
        )

    async def test_only_search_engine_v3(self, shared_api: httpx.AsyncClient) -> None:
        response = await shared_api.get("/users", params={"q": "name:x", "search_engine": "v2"})
        assert_management_error(
            response,
            400,
            "Query validation error: 'No enum match for: \"v2\"' on property search_engine.",
            "invalid_query_string",
        )

    async def test_by_email(self, shared_api: httpx.AsyncClient) -> None:
        found = await shared_api.get("/users-by-email", params={"email": "admin@venues.local"})
        none = await shared_api.get("/users-by-email", params={"email": "nobody@venues.local"})
        missing = await shared_api.get("/users-by-email")
        assert [u["user_id"] for u in found.json()] == ["auth0|demo-admin"]
        assert none.json() == []
        assert_management_error(
            missing,
            400,
            "Query validation error: 'Missing required property: email'.",
            "invalid_query_string",
        )

    async def test_by_email_is_case_sensitive(self, api: httpx.AsyncClient) -> None:
        # Auth0 stores database users' emails in lower case and matches the address exactly.
        created = await create(api)
        assert created["email"] == "new.person@venues.local"
        exact = await api.get("/users-by-email", params={"email": "new.person@venues.local"})
        mixed = await api.get("/users-by-email", params={"email": NEW_USER["email"]})
        upper = await api.get("/users-by-email", params={"email": "ADMIN@VENUES.LOCAL"})
        assert [u["user_id"] for u in exact.json()] == [created["user_id"]]
        assert mixed.json() == []
        assert upper.json() == []


def _add_users(running: RunningEmulator, count: int) -> None:
    """``count`` more users, copies of the viewer (no password hashing: that would be slow)."""
    viewer = running.tenant.users["auth0|demo-viewer"]
    for i in range(count):
        user_id = f"auth0|many-{i:04d}"
        running.tenant.users[user_id] = dataclasses.replace(
            viewer, user_id=user_id, email=f"user{i:04d}@many.example"
        )


class TestListLimits:
    async def test_a_list_reaches_the_first_thousand_users_only(
        self, running: RunningEmulator, admin: str
    ) -> None:
        _add_users(running, 1010)
        async with management_client(running, admin) as api:
            last = await api.get("/users", params={"page": 19, "per_page": 50})
            odd = await api.get(
                "/users", params={"page": 33, "per_page": 30, "include_totals": "true"}
            )
            beyond = await api.get(
                "/users", params={"page": 20, "per_page": 50, "q": "email.domain:many.example"}
            )
        assert last.status_code == 200
        assert len(last.json()) == 50
        # the 991st to the 1,000th: a page that crosses the limit is cut at it
        assert len(odd.json()["users"]) == 10
        assert odd.json()["total"] == 1000
        assert_management_error(
            beyond,
            400,
            "You can only page through the first 1000 records. "
            "See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation",
            "invalid_paging",
        )

    async def test_the_tenant_file_sets_how_many_users_a_list_reaches(
        self, emulator_factory: Factory
    ) -> None:
        running = emulator_factory(management_tenant(users_listed_max=5))
        _add_users(running, 10)
        async with management_client(running, admin_token(running)) as api:
            first = await api.get("/users", params={"per_page": 4, "include_totals": "true"})
            across = await api.get(
                "/users", params={"page": 1, "per_page": 4, "include_totals": "true"}
            )
            beyond = await api.get("/users", params={"page": 1, "per_page": 5})
        assert len(first.json()["users"]) == 4
        assert len(across.json()["users"]) == 1
        assert across.json()["total"] == 5
        assert_management_error(
            beyond,
            400,
            "You can only page through the first 5 records. "
            "See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation",
            "invalid_paging",
        )


class TestPermissionsAndRoles:
    async def test_permissions(self, shared_api: httpx.AsyncClient) -> None:
        bare = await shared_api.get("/users/auth0%7Cdemo-viewer/permissions")
        totals = await shared_api.get(
            "/users/auth0%7Cdemo-admin/permissions", params={"include_totals": "true"}
        )
        assert bare.json() == [
            {
                "permission_name": "read:venues",
                "description": "Read venues",
                "resource_server_identifier": "https://api.venues.local",
                "resource_server_name": "Venue API",
            }
        ]
        body = totals.json()
        assert body["start"] == 0
        assert body["total"] == 8
        assert len(body["permissions"]) == 8
        assert {"start", "limit", "total", "permissions"} == set(body)

    async def test_roles(self, emulator_factory: Factory) -> None:
        data = management_tenant()
        data["users"][0]["roles"] = [{"id": "rol_1", "name": "admin", "description": "All"}]
        running = emulator_factory(data)
        token = await asyncio.to_thread(admin_token, running)
        async with management_client(running, token) as api:
            bare = await api.get("/users/auth0%7Cdemo-admin/roles")
            totals = await api.get(
                "/users/auth0%7Cdemo-viewer/roles", params={"include_totals": "true"}
            )
        assert bare.json() == [{"id": "rol_1", "name": "admin", "description": "All"}]
        assert totals.json() == {"start": 0, "limit": 50, "total": 0, "roles": []}

    async def test_unknown_user(self, shared_api: httpx.AsyncClient) -> None:
        permissions = await shared_api.get("/users/auth0%7Cnobody/permissions")
        roles = await shared_api.get("/users/auth0%7Cnobody/roles")
        for response in (permissions, roles):
            assert_management_error(response, 404, "The user does not exist.", "inexistent_user")
