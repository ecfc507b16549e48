"""``/users/me``: read, update, change the password (other sessions end), delete the account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from app.auth.cipher import generate_key
from tests.conftest import RunningEmulator
from tests.e2e.conftest import bearer
from tests.users.routes.helpers import STRONG, login_as, me, new_session, sign_up

NEW_PASSWORD = "An0ther-Passw0rd!"


class TestGetMe:
    async def test_anonymous_is_401(self, gateway: httpx.AsyncClient) -> None:
        response = await gateway.get("/users/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_returns_the_callers_account(self, gateway: httpx.AsyncClient) -> None:
        email, password, created = await sign_up(gateway)
        token = await login_as(gateway, email, password)
        response = await gateway.get("/users/me", headers=bearer(token))
        assert response.status_code == 200
        body = response.json()
        assert body["user_id"] == created["user_id"]
        assert body["email"] == email
        assert body["last_login"] is not None
        assert "blocked" not in body


class TestUpdateMe:
    async def test_changes_profile_fields_and_merges_metadata(
        self, gateway: httpx.AsyncClient
    ) -> None:
        email, password, _ = await sign_up(gateway)
        token = await login_as(gateway, email, password)
        first = await gateway.patch(
            "/users/me",
            headers=bearer(token),
            json={"name": "Jane Q. Doe", "user_metadata": {"theme": "dark", "lang": "fr"}},
        )
        assert first.status_code == 200, first.text
        response = await gateway.patch(
            "/users/me",
            headers=bearer(token),
            json={
                "nickname": "jq",
                "picture": "https://cdn.example.com/jq.png",
                "user_metadata": {"lang": None, "seat": "A12"},
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["name"] == "Jane Q. Doe"
        assert body["nickname"] == "jq"
        assert body["picture"] == "https://cdn.example.com/jq.png"
        assert body["user_metadata"] == {"theme": "dark", "seat": "A12"}

    async def test_only_profile_fields_may_change(self, gateway: httpx.AsyncClient) -> None:
        email, password, _ = await sign_up(gateway)
        token = await login_as(gateway, email, password)
        for body in (
            {"email": "other@example.com"},
            {"blocked": False},
            {"app_metadata": {"role": "admin"}},
            {"password": NEW_PASSWORD},
            {},
            {"name": None},
            {"picture": "javascript:alert(1)"},
            {"user_metadata": {"blob": "x" * 20_000}},
        ):
            response = await gateway.patch("/users/me", headers=bearer(token), json=body)
            assert response.status_code == 422, body


class TestChangePassword:
    async def test_other_sessions_end_and_this_one_continues(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        email, password, _ = await sign_up(gateway)
        mine = await login_as(gateway, email, password)
        other = await new_session(gateway, emulator, email, password)
        third = await new_session(gateway, emulator, email, password)
        emulator.tenant.clock_offset_s += 1
        refreshed = await gateway.post("/auth/refresh", headers=bearer(third))
        assert refreshed.status_code == 200
        third_new = refreshed.json()["access_token"]

        response = await gateway.post(
            "/users/me/password",
            headers=bearer(mine),
            json={"current_password": password, "new_password": NEW_PASSWORD},
        )
        assert response.status_code == 204, response.text

        for token in (other, third_new):
            assert (await me(gateway, token)).status_code == 401
            assert (await gateway.post("/auth/refresh", headers=bearer(token))).status_code == 401
        assert (await me(gateway, mine)).status_code == 200
        refreshed = await gateway.post("/auth/refresh", headers=bearer(mine))
        assert refreshed.status_code == 200
        assert (await me(gateway, refreshed.json()["access_token"])).status_code == 200
        assert await login_as(gateway, email, NEW_PASSWORD)
        old = await gateway.post("/auth/login", json={"username": email, "password": password})
        assert old.status_code == 401

    async def test_in_cookie_mode_this_browser_continues(
        self, gateway_factory: Callable[..., Any], emulator: RunningEmulator
    ) -> None:
        spa = "http://127.0.0.1:5173"
        gateway, _ = await gateway_factory(cors_origins=[spa])
        email, password, _ = await sign_up(gateway)
        other = await login_as(gateway, email, password)
        emulator.tenant.clock_offset_s += 1  # Auth0 tokens of one second are identical
        session = await gateway.post(
            "/auth/session",
            json={"username": email, "password": password},
            headers={"Origin": spa, "X-Requested-With": "fetch"},
        )
        assert session.status_code == 200, session.text
        browser = {"Cookie": session.headers["set-cookie"].split(";", 1)[0]}
        response = await gateway.post(
            "/users/me/password",
            headers={**browser, "Origin": spa, "X-Requested-With": "fetch"},
            json={"current_password": password, "new_password": NEW_PASSWORD},
        )
        assert response.status_code == 204, response.text
        assert (await gateway.get("/users/me", headers=browser)).status_code == 200
        assert (await me(gateway, other)).status_code == 401

    async def test_other_workers_stop_serving_the_ended_sessions(
        self, gateway_factory: Callable[..., Any], emulator: RunningEmulator
    ) -> None:
        # no in-process tier: a worker cannot keep serving a token another worker revoked
        key = generate_key()  # one key for both workers, as in a deployment
        first, settings = await gateway_factory(cache={"local_ttl_s": 0}, session={"keys": [key]})
        second, _ = await gateway_factory(
            cache={"namespace": settings.cache.namespace, "local_ttl_s": 0},
            session={"keys": [key]},
        )
        email, password, _ = await sign_up(first)
        mine = await login_as(first, email, password)
        other = await new_session(second, emulator, email, password)
        assert (await me(second, other)).status_code == 200

        response = await first.post(
            "/users/me/password",
            headers=bearer(mine),
            json={"current_password": password, "new_password": NEW_PASSWORD},
        )
        assert response.status_code == 204
        assert (await me(second, other)).status_code == 401
        assert (await second.post("/auth/refresh", headers=bearer(other))).status_code == 401
        assert (await me(second, mine)).status_code == 200

    async def test_ended_sessions_refresh_tokens_are_revoked_at_auth0(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        email, password, created = await sign_up(gateway)
        mine = await login_as(gateway, email, password)
        await new_session(gateway, emulator, email, password)
        response = await gateway.post(
            "/users/me/password",
            headers=bearer(mine),
            json={"current_password": password, "new_password": NEW_PASSWORD},
        )
        assert response.status_code == 204
        live = [
            t
            for t in emulator.tenant.refresh_tokens.values()
            if t.user_id == created["user_id"] and emulator.tenant.is_live(t)
        ]
        # the caller's own session keeps exactly one; the other and the check's are revoked
        assert len(live) == 1

    async def test_a_hundred_sessions_all_end(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        email, password, created = await sign_up(gateway)
        mine = await login_as(gateway, email, password)
        others = [await new_session(gateway, emulator, email, password) for _ in range(100)]
        assert (await me(gateway, others[0])).status_code == 200
        response = await gateway.post(
            "/users/me/password",
            headers=bearer(mine),
            json={"current_password": password, "new_password": NEW_PASSWORD},
        )
        assert response.status_code == 204, response.text
        for token in others:
            assert (await me(gateway, token)).status_code == 401
        for token in (others[0], others[-1]):
            assert (await gateway.post("/auth/refresh", headers=bearer(token))).status_code == 401
        assert (await me(gateway, mine)).status_code == 200
        live = [
            t
            for t in emulator.tenant.refresh_tokens.values()
            if t.user_id == created["user_id"] and emulator.tenant.is_live(t)
        ]
        assert len(live) == 1

    async def test_wrong_current_password_is_403_and_changes_nothing(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        email, password, _ = await sign_up(gateway)
        mine = await login_as(gateway, email, password)
        other = await new_session(gateway, emulator, email, password)
        response = await gateway.post(
            "/users/me/password",
            headers=bearer(mine),
            json={"current_password": "not-it", "new_password": NEW_PASSWORD},
        )
        assert response.status_code == 403
        assert response.json()["error"] == "invalid_current_password"
        assert (await me(gateway, other)).status_code == 200
        assert await login_as(gateway, email, password)

    async def test_weak_new_password_is_400_and_ends_nothing(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        email, password, _ = await sign_up(gateway)
        mine = await login_as(gateway, email, password)
        other = await new_session(gateway, emulator, email, password)
        response = await gateway.post(
            "/users/me/password",
            headers=bearer(mine),
            json={"current_password": password, "new_password": "weak"},
        )
        assert response.status_code == 400
        assert response.json()["error"] == "weak_password"
        assert (await me(gateway, other)).status_code == 200

    async def test_anonymous_is_401(self, gateway: httpx.AsyncClient) -> None:
        response = await gateway.post(
            "/users/me/password", json={"current_password": STRONG, "new_password": NEW_PASSWORD}
        )
        assert response.status_code == 401


class TestDeleteMe:
    async def test_the_account_goes_and_every_session_ends(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        email, password, created = await sign_up(gateway)
        mine = await login_as(gateway, email, password)
        other = await new_session(gateway, emulator, email, password)

        response = await gateway.request(
            "DELETE", "/users/me", headers=bearer(mine), json={"current_password": password}
        )
        assert response.status_code == 204

        assert created["user_id"] not in emulator.tenant.users
        for token in (mine, other):
            assert (await me(gateway, token)).status_code == 401
            assert (await gateway.post("/auth/refresh", headers=bearer(token))).status_code == 401
        again = await gateway.post("/auth/login", json={"username": email, "password": password})
        assert again.status_code == 401

    async def test_a_token_alone_cannot_delete_the_account(
        self, gateway: httpx.AsyncClient, emulator: RunningEmulator
    ) -> None:
        email, password, created = await sign_up(gateway)
        mine = await login_as(gateway, email, password)
        without = await gateway.delete("/users/me", headers=bearer(mine))
        assert without.status_code == 422
        wrong = await gateway.request(
            "DELETE",
            "/users/me",
            headers=bearer(mine),
            json={"current_password": "Wr0ng-Passw0rd!"},
        )
        assert wrong.status_code == 403
        assert wrong.json()["error"] == "invalid_current_password"
        assert created["user_id"] in emulator.tenant.users
        assert (await me(gateway, mine)).status_code == 200
