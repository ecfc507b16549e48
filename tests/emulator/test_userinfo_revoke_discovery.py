"""GET/POST /userinfo, POST /oauth/revoke, discovery and JWKS."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import jwt
import pytest

from emulator.state import Tenant
from tests.conftest import RunningEmulator, start_emulator
from tests.emulator.auth_helpers import (
    ADMIN,
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    assert_error,
    client_for,
    demo_tenant,
    login,
    refresh,
)

Factory = Callable[[dict[str, Any] | None], RunningEmulator]


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningEmulator]:
    """One demo tenant for the tests of this module whose calls leave nothing that matters."""
    running = start_emulator()
    yield running
    running.server.stop()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_invalid_token(response: httpx.Response, description: str) -> None:
    assert response.status_code == 401
    assert response.text == "Unauthorized"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="Users", error="invalid_token", error_description="{description}"'
    )


class TestUserinfo:
    @pytest.mark.parametrize("method", ["GET", "POST"])
    async def test_profile_and_email(self, emulator: RunningEmulator, method: str) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["access_token"]
            response = await http.request(method, "/userinfo", headers=_bearer(token))
        assert response.status_code == 200
        body = response.json()
        assert body["sub"] == "auth0|demo-admin"
        assert body["email"] == ADMIN[0]
        assert body["email_verified"] is True
        assert body["name"] == "Demo Admin"
        assert body["nickname"] == "admin"
        assert body["picture"].startswith("https://")
        assert body["updated_at"].endswith("Z")
        datetime.fromisoformat(body["updated_at"])
        assert response.headers["x-ratelimit-limit"] == "5"
        assert response.headers["x-ratelimit-remaining"] == "9"
        assert int(response.headers["x-ratelimit-reset"]) > 0

    async def test_claims_follow_scope(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http, scope="openid email"))["access_token"]
            body = (await http.get("/userinfo", headers=_bearer(token))).json()
        assert set(body) == {"sub", "email", "email_verified"}

    async def test_opaque_token(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http, audience=None, scope="openid profile"))["access_token"]
            response = await http.get("/userinfo", headers=_bearer(token))
        assert response.status_code == 200
        assert response.json()["name"] == "Demo Admin"
        assert "email" not in response.json()

    async def test_an_encrypted_token_of_another_tenant_is_refused(
        self, emulator: RunningEmulator
    ) -> None:
        stranger = Tenant(emulator.issuer)
        foreign = stranger.encrypt_userinfo_token(
            {"sub": "auth0|demo-admin", "scope": "openid", "exp": emulator.tenant.now() + 60}
        )
        async with client_for(emulator) as http:
            response = await http.get("/userinfo", headers=_bearer(foreign))
            dotted = await http.get("/userinfo", headers=_bearer("a.b.c.d.e"))
        _assert_invalid_token(response, "Invalid token")
        _assert_invalid_token(dotted, "Invalid token")

    async def test_openid_alone_releases_the_phone_number(self, emulator: RunningEmulator) -> None:
        emulator.tenant.users["auth0|demo-admin"].phone_number = "+15555550100"
        async with client_for(emulator) as http:
            token = (await login(http, audience=None, scope="openid"))["access_token"]
            body = (await http.get("/userinfo", headers=_bearer(token))).json()
        assert body["phone_number"] == "+15555550100"
        assert body["email"] == ADMIN[0]

    async def test_opaque_token_without_openid(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http, audience=None, scope="profile"))["access_token"]
            response = await http.get("/userinfo", headers=_bearer(token))
        assert response.status_code == 401

    async def test_api_only_token_is_refused(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http, scope="read:venues"))["access_token"]
            response = await http.get("/userinfo", headers=_bearer(token))
        _assert_invalid_token(response, "Invalid token")

    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}],
    )
    async def test_garbage(self, shared: RunningEmulator, headers: dict[str, str]) -> None:
        async with client_for(shared) as http:
            response = await http.get("/userinfo", headers=headers)
        assert response.status_code == 401
        assert response.text == "Unauthorized"
        assert 'error="invalid_token"' in response.headers["www-authenticate"]

    async def test_foreign_signature(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["access_token"]
            header, payload, signature = token.split(".")
            forged = f"{header}.{payload}.{signature[::-1]}"
            response = await http.get("/userinfo", headers=_bearer(forged))
        _assert_invalid_token(response, "Invalid token")

    async def test_expired(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            jwt_token = (await login(http))["access_token"]
            opaque = (await login(http, audience=None))["access_token"]
            await http.post("/__emulator/clock", json={"offset_s": 90_000})
            for token in (jwt_token, opaque):
                response = await http.get("/userinfo", headers=_bearer(token))
                _assert_invalid_token(response, "The token has expired")

    async def test_rate_limit(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        data["limits"].update(userinfo_burst=2, userinfo_per_minute=1)
        running = emulator_factory(data)
        async with client_for(running) as http:
            admin = (await login(http))["access_token"]
            remaining = [
                (await http.get("/userinfo", headers=_bearer(admin))).headers[
                    "x-ratelimit-remaining"
                ]
                for _ in range(2)
            ]
            limited = await http.get("/userinfo", headers=_bearer(admin))
            # The limit is per user: another user still gets through.
            viewer = (await login(http, ("viewer@venues.local", "Viewer-Passw0rd!")))[
                "access_token"
            ]
            other = await http.get("/userinfo", headers=_bearer(viewer))
            # One minute later one request has been refilled.
            await http.post("/__emulator/clock", json={"offset_s": 61})
            refilled = await http.get("/userinfo", headers=_bearer(admin))
        assert remaining == ["1", "0"]
        assert_error(
            limited,
            429,
            "too_many_requests",
            "Too many requests. Check the X-RateLimit-Limit, X-RateLimit-Remaining and "
            "X-RateLimit-Reset headers.",
        )
        assert limited.headers["x-ratelimit-limit"] == "1"
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert int(limited.headers["x-ratelimit-reset"]) > running.tenant.now() - 61
        assert other.status_code == 200
        assert refilled.status_code == 200

    async def test_rate_limit_off(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        data["limits"].update(userinfo_burst=1, userinfo_enabled=False)
        running = emulator_factory(data)
        async with client_for(running) as http:
            token = (await login(http))["access_token"]
            statuses = {
                (await http.get("/userinfo", headers=_bearer(token))).status_code for _ in range(3)
            }
        assert statuses == {200}


class TestRevoke:
    async def test_json_revokes(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["refresh_token"]
            response = await http.post(
                "/oauth/revoke",
                json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token": token},
            )
            assert response.status_code == 200
            assert response.content == b""
            assert_error(
                await refresh(http, token),
                403,
                "invalid_grant",
                "Unknown or invalid refresh token.",
            )

    async def test_form_and_basic(self, emulator: RunningEmulator) -> None:
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        async with client_for(emulator) as http:
            token = (await login(http))["refresh_token"]
            response = await http.post(
                "/oauth/revoke", data={"token": token}, headers={"Authorization": f"Basic {basic}"}
            )
            assert response.status_code == 200
            assert (await refresh(http, token)).status_code == 403

    async def test_unknown_token_is_fine(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/revoke",
                json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token": "v1.nope"},
            )
        assert response.status_code == 200
        assert response.content == b""

    async def test_bad_client(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["refresh_token"]
            response = await http.post(
                "/oauth/revoke",
                json={"client_id": CLIENT_ID, "client_secret": "wrong", "token": token},
            )
            assert_error(response, 401, "access_denied", "Unauthorized")
            assert (await refresh(http, token)).status_code == 200

    async def test_missing_token(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/revoke", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
            )
        assert_error(response, 400, "invalid_request", "Missing required parameter: token")

    @pytest.mark.parametrize("deletes_grant", [False, True])
    async def test_revocation_deletes_grant_flag(
        self, emulator_factory: Factory, deletes_grant: bool
    ) -> None:
        data = demo_tenant()
        data["settings"]["flags"]["revoke_refresh_token_grant"] = deletes_grant
        running = emulator_factory(data)
        async with client_for(running) as http:
            first = (await login(http))["refresh_token"]
            second = (await login(http))["refresh_token"]
            await http.post(
                "/oauth/revoke",
                json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token": first},
            )
            other = await refresh(http, second)
        assert other.status_code == (403 if deletes_grant else 200)


class TestDiscovery:
    async def test_openid_configuration(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.get("/.well-known/openid-configuration")
        doc = response.json()
        issuer = shared.issuer
        assert doc["issuer"] == issuer
        assert doc["token_endpoint"] == f"{issuer}oauth/token"
        assert doc["userinfo_endpoint"] == f"{issuer}userinfo"
        assert doc["jwks_uri"] == f"{issuer}.well-known/jwks.json"
        assert doc["revocation_endpoint"] == f"{issuer}oauth/revoke"
        assert "offline_access" in doc["scopes_supported"]
        assert "RS256" in doc["id_token_signing_alg_values_supported"]
        assert "grant_types_supported" not in doc
        assert "introspection_endpoint" not in doc

    async def test_fields_in_a_live_tenants_order(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            doc = (await http.get("/.well-known/openid-configuration")).json()
        issuer = shared.issuer
        # A live tenant's document as captured, less the methods and token bindings the
        # emulator does not implement (token_endpoint_auth_signing_alg_values_supported,
        # tls_client_certificate_bound_access_tokens, dpop_signing_alg_values_supported).
        assert list(doc) == [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "device_authorization_endpoint",
            "userinfo_endpoint",
            "mfa_challenge_endpoint",
            "jwks_uri",
            "registration_endpoint",
            "revocation_endpoint",
            "scopes_supported",
            "response_types_supported",
            "code_challenge_methods_supported",
            "response_modes_supported",
            "subject_types_supported",
            "token_endpoint_auth_methods_supported",
            "claims_supported",
            "request_uri_parameter_supported",
            "request_parameter_supported",
            "id_token_signing_alg_values_supported",
            "request_object_signing_alg_values_supported",
            "backchannel_logout_supported",
            "backchannel_logout_session_supported",
            "end_session_endpoint",
            "backchannel_authentication_endpoint",
            "backchannel_token_delivery_modes_supported",
            "global_token_revocation_endpoint",
            "global_token_revocation_endpoint_auth_methods_supported",
        ]
        assert doc["request_parameter_supported"] is True
        assert doc["backchannel_authentication_endpoint"] == f"{issuer}bc-authorize"
        assert doc["global_token_revocation_endpoint"] == (
            f"{issuer}oauth/global-token-revocation/connection/{{connectionName}}"
        )
        assert doc["global_token_revocation_endpoint_auth_methods_supported"] == [
            "global-token-revocation+jwt"
        ]

    async def test_jwks_verifies_tokens(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            token = (await login(http))["access_token"]
            jwks = (await http.get("/.well-known/jwks.json")).json()
        key = jwks["keys"][0]
        assert {key["kty"], key["use"], key["alg"]} == {"RSA", "sig", "RS256"}
        assert key["x5c"]
        assert key["x5t"]
        public = jwt.PyJWK(key).key
        verified = jwt.decode(
            token, public, algorithms=["RS256"], audience=API, issuer=shared.issuer
        )
        assert verified["sub"] == "auth0|demo-admin"
