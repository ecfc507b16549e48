"""The refresh_token grant: rotation, reuse detection, leeway, lifetimes, scope narrowing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import (
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    assert_error,
    claims,
    client_for,
    demo_tenant,
    login,
    refresh,
)

Factory = Callable[[dict[str, Any] | None], RunningEmulator]
UNKNOWN = "Unknown or invalid refresh token."


def _tenant(**policy: Any) -> dict[str, Any]:
    data = demo_tenant()
    data["clients"][0]["refresh_token"].update(policy)
    return data


async def _live(http: httpx.AsyncClient) -> dict[str, bool]:
    listing = (await http.get("/__emulator/refresh-tokens")).json()
    return {row["token"]: row["live"] for row in listing}


class TestRotation:
    async def test_exchange_rotates(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            first = (await login(http))["refresh_token"]
            response = await refresh(http, first)
            assert response.status_code == 200
            assert response.headers["cache-control"] == "no-store"
            body = response.json()
            second = body["refresh_token"]
            assert second != first
            assert body["scope"] == claims(body["access_token"])["scope"]
            assert "id_token" in body
            access = claims(body["access_token"])
            assert access["gty"] == "refresh_token"
            assert access["aud"] == [API, f"{emulator.issuer}userinfo"]
            assert "permissions" in access
            assert (await refresh(http, second)).status_code == 200
            live = await _live(http)
        assert live[first] is False
        assert live[second] is False

    async def test_reuse_revokes_the_family(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            first = (await login(http))["refresh_token"]
            other_login = (await login(http))["refresh_token"]
            second = (await refresh(http, first)).json()["refresh_token"]
            assert_error(await refresh(http, first), 403, "invalid_grant", UNKNOWN)
            # The newest token of the family dies too; another login's family does not.
            assert_error(await refresh(http, second), 403, "invalid_grant", UNKNOWN)
            assert (await refresh(http, other_login)).status_code == 200
            live = await _live(http)
        assert not live[second]

    async def test_leeway_allows_the_previous_token(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(leeway=30))
        async with client_for(running) as http:
            first = (await login(http))["refresh_token"]
            second = (await refresh(http, first)).json()["refresh_token"]
            again = await refresh(http, first)
            assert again.status_code == 200
            assert again.json()["refresh_token"] not in {first, second}
            # Using the successor makes `first` the second-to-last token: reuse.
            assert (await refresh(http, second)).status_code == 200
            assert_error(await refresh(http, first), 403, "invalid_grant", UNKNOWN)
            assert not any((await _live(http)).values())

    async def test_leeway_runs_out(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(leeway=30))
        async with client_for(running) as http:
            first = (await login(http))["refresh_token"]
            second = (await refresh(http, first)).json()["refresh_token"]
            await http.post("/__emulator/clock", json={"offset_s": 31})
            assert_error(await refresh(http, first), 403, "invalid_grant", UNKNOWN)
            assert_error(await refresh(http, second), 403, "invalid_grant", UNKNOWN)

    async def test_absolute_lifetime_is_not_extended(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(token_lifetime=1000, idle_token_lifetime=900))
        async with client_for(running) as http:
            token = (await login(http))["refresh_token"]
            await http.post("/__emulator/clock", json={"offset_s": 600})
            response = await refresh(http, token)
            assert response.status_code == 200
            token = response.json()["refresh_token"]
            await http.post("/__emulator/clock", json={"offset_s": 1001})
            assert_error(await refresh(http, token), 403, "invalid_grant", UNKNOWN)

    async def test_idle_lifetime(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(token_lifetime=10_000, idle_token_lifetime=100))
        async with client_for(running) as http:
            token = (await login(http))["refresh_token"]
            await http.post("/__emulator/clock", json={"offset_s": 90})
            token = (await refresh(http, token)).json()["refresh_token"]
            # Renewed by the exchange: 90 s later still fine, 101 s after that not.
            await http.post("/__emulator/clock", json={"offset_s": 180})
            token = (await refresh(http, token)).json()["refresh_token"]
            await http.post("/__emulator/clock", json={"offset_s": 281})
            assert_error(await refresh(http, token), 403, "invalid_grant", UNKNOWN)


class TestNonRotating:
    async def test_same_token_again_and_again(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(rotation_type="non-rotating"))
        async with client_for(running) as http:
            token = (await login(http))["refresh_token"]
            for _ in range(3):
                response = await refresh(http, token)
                assert response.status_code == 200
                assert "refresh_token" not in response.json()
            assert (await _live(http))[token] is True

    async def test_switch_to_rotation_replaces_old_tokens(self, emulator_factory: Factory) -> None:
        running = emulator_factory(_tenant(rotation_type="non-rotating"))
        async with client_for(running) as http:
            old = (await login(http))["refresh_token"]
            running.tenant.clients[CLIENT_ID].refresh_token["rotation_type"] = "rotating"
            response = await refresh(http, old)
            assert response.status_code == 200
            new = response.json()["refresh_token"]
            assert_error(await refresh(http, old), 403, "invalid_grant", UNKNOWN)
            assert (await refresh(http, new)).status_code == 200


class TestScope:
    @pytest.mark.parametrize("scope", ["", None])
    async def test_empty_scope_means_the_original(
        self, emulator: RunningEmulator, scope: str | None
    ) -> None:
        async with client_for(emulator) as http:
            tokens = await login(http)
            response = await refresh(http, tokens["refresh_token"], scope=scope)
        assert response.json()["scope"] == tokens["scope"]

    async def test_narrowing(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            tokens = await login(http)
            narrow = await refresh(http, tokens["refresh_token"], scope="read:venues")
            body = narrow.json()
            assert body["scope"] == "read:venues"
            assert claims(body["access_token"])["aud"] == API
            assert "id_token" not in body
            # The rotated token keeps the grant's full scope.
            wide = await refresh(http, body["refresh_token"])
        assert wide.json()["scope"] == tokens["scope"]

    async def test_widening_is_refused(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            tokens = await login(http, scope="openid offline_access read:venues")
            response = await refresh(http, tokens["refresh_token"], scope="openid delete:venues")
        assert response.status_code == 403
        assert response.json()["error"] == "invalid_scope"

    async def test_permissions_follow_the_user(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            tokens = await login(http)
            emulator.tenant.users["auth0|demo-admin"].permissions = [(API, "read:venues")]
            body = (await refresh(http, tokens["refresh_token"])).json()
        assert body["scope"] == "openid profile email offline_access read:venues"
        assert claims(body["access_token"])["permissions"] == ["read:venues"]

    async def test_opaque_stays_opaque(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            tokens = await login(http, audience=None)
            body = (await refresh(http, tokens["refresh_token"])).json()
        assert body["access_token"].count(".") == 4
        refreshed = emulator.tenant.decrypt_userinfo_token(body["access_token"])
        assert refreshed is not None
        assert refreshed["sub"] == "auth0|demo-admin"


class TestErrors:
    async def test_unknown_token(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            assert_error(await refresh(http, "v1.nope"), 403, "invalid_grant", UNKNOWN)

    async def test_token_of_another_client(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        other = {**data["clients"][0], "client_id": "other", "client_secret": "other-secret"}
        data["clients"].append(other)
        running = emulator_factory(data)
        async with client_for(running) as http:
            token = (await login(http))["refresh_token"]
            response = await refresh(http, token, client_id="other", client_secret="other-secret")
        assert_error(response, 403, "invalid_grant", UNKNOWN)

    async def test_missing_token(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            response = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                },
            )
        assert_error(response, 400, "invalid_request", "Missing required parameter: refresh_token")

    async def test_deleted_user(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["refresh_token"]
            del emulator.tenant.users["auth0|demo-admin"]
            response = await refresh(http, token)
        assert_error(
            response,
            403,
            "invalid_grant",
            "The refresh_token was generated for a user who doesn't exist anymore.",
        )

    async def test_blocked_user(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["refresh_token"]
            emulator.tenant.users["auth0|demo-admin"].blocked = True
            response = await refresh(http, token)
        assert_error(response, 401, "unauthorized", "user is blocked")

    async def test_bad_client_secret(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["refresh_token"]
            response = await refresh(http, token, client_secret="wrong")
            assert_error(response, 401, "access_denied", "Unauthorized")
            # A refused client does not spend the token.
            assert (await refresh(http, token)).status_code == 200
