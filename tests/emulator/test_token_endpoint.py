"""POST /oauth/token: password grants, client credentials, client authentication, errors."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from emulator.state import Tenant
from tests.conftest import RunningEmulator, start_emulator
from tests.emulator.auth_helpers import (
    ADMIN,
    ALL_VENUE_SCOPES,
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    REALM_GRANT,
    VIEWER,
    assert_error,
    claims,
    client_for,
    demo_tenant,
    login,
    login_body,
)

Factory = Callable[[dict[str, Any] | None], RunningEmulator]


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningEmulator]:
    """One demo tenant for the tests of this module whose calls leave nothing that matters."""
    running = start_emulator()
    yield running
    running.server.stop()


class TestPasswordRealm:
    async def test_tokens_and_claims(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            response = await http.post("/oauth/token", json=login_body())
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {
            "access_token",
            "token_type",
            "expires_in",
            "scope",
            "id_token",
            "refresh_token",
        }
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        assert body["scope"] == "openid profile email offline_access " + " ".join(ALL_VENUE_SCOPES)
        header = jwt.get_unverified_header(body["access_token"])
        assert header["alg"] == "RS256"
        assert header["kid"] == emulator.tenant.keys[0].kid
        access = claims(body["access_token"])
        assert access["iss"] == emulator.issuer
        assert emulator.issuer.endswith("/")
        assert access["sub"] == "auth0|demo-admin"
        assert access["aud"] == [API, f"{emulator.issuer}userinfo"]
        assert access["azp"] == CLIENT_ID
        assert access["gty"] == "password"
        assert access["exp"] - access["iat"] == 3600
        assert access["permissions"] == ALL_VENUE_SCOPES
        identity = claims(body["id_token"])
        assert identity["aud"] == CLIENT_ID
        assert identity["sub"] == "auth0|demo-admin"
        assert identity["email"] == ADMIN[0]
        assert identity["email_verified"] is True
        assert identity["name"] == "Demo Admin"
        assert identity["nickname"] == "admin"
        assert identity["updated_at"].endswith("Z")

    async def test_form_body(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", data=login_body())
        assert response.status_code == 200
        assert response.json()["token_type"] == "Bearer"

    async def test_json_nulls_for_optional_fields(self, shared: RunningEmulator) -> None:
        # auth0-python sends null for every optional field it was not given.
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", json=login_body(scope=None))
        assert response.status_code == 200
        body = response.json()
        # No scope asked: a password exchange gets all the API's scopes the user may have.
        assert body["scope"] == " ".join(ALL_VENUE_SCOPES)
        assert "id_token" not in body
        assert "refresh_token" not in body
        assert claims(body["access_token"])["aud"] == API

    async def test_client_secret_basic(self, shared: RunningEmulator) -> None:
        body = login_body()
        del body["client_secret"], body["client_id"]
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        async with client_for(shared) as http:
            good = await http.post(
                "/oauth/token", data=body, headers={"Authorization": f"Basic {basic}"}
            )
            wrong = base64.b64encode(f"{CLIENT_ID}:nope".encode()).decode()
            bad = await http.post(
                "/oauth/token", data=body, headers={"Authorization": f"Basic {wrong}"}
            )
        assert good.status_code == 200
        assert_error(bad, 401, "access_denied", "Unauthorized")

    async def test_only_openid_brings_standard_scopes(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", json=login_body(scope="openid read:venues"))
        assert response.json()["scope"] == "openid profile email address phone read:venues"

    async def test_openid_alone_without_audience(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", json=login_body(scope="openid", audience=None)
            )
        assert response.json()["scope"] == "openid profile email address phone"

    async def test_other_oidc_scopes_are_not_expanded(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", json=login_body(scope="openid email", audience=None)
            )
        assert response.json()["scope"] == "openid email"

    @pytest.mark.parametrize(
        ("user", "password"),
        [(ADMIN[0], "wrong-password"), ("nobody@venues.local", "whatever")],
    )
    async def test_wrong_credentials(
        self, shared: RunningEmulator, user: str, password: str
    ) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", json=login_body(username=user, password=password)
            )
        assert_error(response, 403, "invalid_grant", "Wrong email or password.")
        assert response.headers["cache-control"] == "no-store"

    async def test_username_is_case_insensitive(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", json=login_body(username=ADMIN[0].upper()))
        assert response.status_code == 200

    async def test_unknown_realm(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", json=login_body(realm="nope"))
        assert_error(response, 400, "invalid_request", "Unknown realm nope.")

    @pytest.mark.parametrize("field", ["username", "password", "realm"])
    async def test_missing_parameter(self, shared: RunningEmulator, field: str) -> None:
        async with client_for(shared) as http:
            body = login_body()
            del body[field]
            response = await http.post("/oauth/token", json=body)
        assert_error(response, 400, "invalid_request", f"Missing required parameter: {field}")

    @pytest.mark.parametrize(
        "changes",
        [
            {"client_secret": "wrong"},
            {"client_id": "no-such-client"},
            {"client_id": None},
            {"client_secret": None},
        ],
    )
    async def test_bad_client(self, shared: RunningEmulator, changes: dict[str, Any]) -> None:
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", json=login_body(**changes))
        assert_error(response, 401, "access_denied", "Unauthorized")

    async def test_unknown_audience(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", json=login_body(audience="https://nope.example")
            )
        assert_error(
            response,
            403,
            "access_denied",
            "Service not enabled within domain: https://nope.example",
        )

    async def test_grant_not_allowed(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        data["clients"][0]["grant_types"] = ["password", "refresh_token"]
        running = emulator_factory(data)
        async with client_for(running) as http:
            response = await http.post("/oauth/token", json=login_body())
        assert_error(
            response,
            403,
            "unauthorized_client",
            f"Grant type '{REALM_GRANT}' not allowed for the client.",
        )
        assert response.json()["error_uri"] == "https://auth0.com/docs/clients/client-grant-types"

    @pytest.mark.parametrize(
        ("flag", "status", "error", "description"),
        [
            ("blocked", 401, "unauthorized", "user is blocked"),
            (
                "password_leaked",
                401,
                "password_leaked",
                "This login attempt has been blocked because the password you're using was "
                "previously disclosed through a data breach (not in this application). Please "
                "check your email for more information.",
            ),
            ("mfa_required", 403, "mfa_required", "Multifactor authentication required"),
        ],
    )
    async def test_user_flags(
        self, emulator_factory: Factory, flag: str, status: int, error: str, description: str
    ) -> None:
        data = demo_tenant()
        data["users"][0][flag] = True
        running = emulator_factory(data)
        async with client_for(running) as http:
            right = await http.post("/oauth/token", json=login_body())
            wrong = await http.post("/oauth/token", json=login_body(password="wrong"))
        assert_error(right, status, error, description)
        if flag == "mfa_required":
            assert right.json()["mfa_token"]
        # A wrong password gives nothing away about the account's state.
        assert_error(wrong, 403, "invalid_grant", "Wrong email or password.")


class TestScopesAndAudience:
    async def test_rbac_intersection(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token",
                json=login_body(VIEWER, scope="openid read:venues delete:venues"),
            )
        body = response.json()
        assert body["scope"] == "openid profile email address phone read:venues"
        access = claims(body["access_token"])
        assert access["scope"] == body["scope"]
        assert access["permissions"] == ["read:venues"]

    async def test_rbac_without_api_scopes_gives_user_permissions(
        self, shared: RunningEmulator
    ) -> None:
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", json=login_body(VIEWER, scope="openid"))
        assert response.json()["scope"] == "openid profile email address phone read:venues"

    async def test_without_rbac_all_scopes(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        data["resource_servers"][0]["enforce_policies"] = False
        running = emulator_factory(data)
        async with client_for(running) as http:
            response = await http.post(
                "/oauth/token", json=login_body(VIEWER, scope="delete:venues")
            )
        body = response.json()
        assert body["scope"] == "delete:venues"
        assert "permissions" not in claims(body["access_token"])

    async def test_no_refresh_token_without_offline_access_on_api(
        self, emulator_factory: Factory
    ) -> None:
        data = demo_tenant()
        data["resource_servers"][0]["allow_offline_access"] = False
        running = emulator_factory(data)
        async with client_for(running) as http:
            body = (await http.post("/oauth/token", json=login_body())).json()
        assert "refresh_token" not in body
        assert "offline_access" not in body["scope"].split()

    async def test_no_refresh_token_without_the_grant(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        data["clients"][0]["grant_types"] = [REALM_GRANT]
        running = emulator_factory(data)
        async with client_for(running) as http:
            body = (await http.post("/oauth/token", json=login_body())).json()
        assert "refresh_token" not in body

    async def test_encrypted_token_without_audience(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            body = (await http.post("/oauth/token", json=login_body(audience=None))).json()
        token = body["access_token"]
        # a compact JWE: header, an empty encrypted key (alg dir), IV, ciphertext, tag
        header, key, iv, ciphertext, tag = token.split(".")
        assert jwt.utils.base64url_decode(header) == (
            f'{{"alg":"dir","enc":"A256GCM","iss":"{shared.issuer}"}}'.encode()
        )
        assert key == ""
        assert len(jwt.utils.base64url_decode(iv)) == 12
        assert len(jwt.utils.base64url_decode(tag)) == 16
        assert b"auth0|demo-admin" not in jwt.utils.base64url_decode(ciphertext)
        with pytest.raises(jwt.DecodeError):
            jwt.get_unverified_header(token)
        sealed = shared.tenant.decrypt_userinfo_token(token)
        assert sealed is not None
        assert sealed["sub"] == "auth0|demo-admin"
        assert sealed["aud"] == f"{shared.issuer}userinfo"
        assert body["scope"] == "openid profile email offline_access"
        assert body["expires_in"] == 86400
        assert "refresh_token" in body

    def test_an_encrypted_token_is_read_by_its_tenant_only(self, shared: RunningEmulator) -> None:
        token = shared.tenant.encrypt_userinfo_token({"sub": "auth0|x", "exp": 1})
        header, key, iv, ciphertext, tag = token.split(".")
        other = Tenant(shared.issuer)
        flipped = ("A" if ciphertext[0] != "A" else "B") + ciphertext[1:]
        for forged in (
            ".".join((header, key, iv, flipped, tag)),
            ".".join((header, "x", iv, ciphertext, tag)),
            ".".join((header, key, iv, ciphertext, tag + "=")),
            token + ".",
            token.replace(".", "", 1),
        ):
            assert shared.tenant.decrypt_userinfo_token(forged) is None, forged
        assert other.decrypt_userinfo_token(token) is None
        assert shared.tenant.decrypt_userinfo_token(token) == {"sub": "auth0|x", "exp": 1}

    async def test_default_audience(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        data["settings"]["default_audience"] = API
        running = emulator_factory(data)
        async with client_for(running) as http:
            body = (await http.post("/oauth/token", json=login_body(audience=None))).json()
        assert claims(body["access_token"])["aud"][0] == API


class TestPasswordGrant:
    async def test_default_directory(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", data=login_body(grant_type="password", realm=None)
            )
        assert response.status_code == 200
        assert claims(response.json()["access_token"])["gty"] == "password"

    async def test_without_default_directory(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        del data["settings"]["default_directory"]
        running = emulator_factory(data)
        async with client_for(running) as http:
            response = await http.post(
                "/oauth/token", json=login_body(grant_type="password", realm=None)
            )
        assert_error(
            response,
            500,
            "server_error",
            "Authorization server not configured with default connection.",
        )

    async def test_grant_not_allowed(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        data["clients"][0]["grant_types"] = [REALM_GRANT]
        running = emulator_factory(data)
        async with client_for(running) as http:
            response = await http.post("/oauth/token", json=login_body(grant_type="password"))
        assert_error(
            response,
            403,
            "unauthorized_client",
            "Grant type 'password' not allowed for the client.",
        )


class TestGrantType:
    async def test_unsupported(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", json=login_body(grant_type="urn:example:magic")
            )
        assert_error(response, 400, "unsupported_grant_type", "Grant type not supported")

    async def test_missing(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", json=login_body(grant_type=None))
        assert_error(response, 400, "invalid_request", "Missing required parameter: grant_type")

    async def test_malformed_json(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", content=b"{nope", headers={"Content-Type": "application/json"}
            )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


class TestClientCredentials:
    def _body(self, emulator: RunningEmulator, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "audience": f"{emulator.issuer}api/v2/",
        }
        body.update(changes)
        return body

    async def test_management_token(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", data=self._body(shared))
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert body["expires_in"] == 86400
        access = claims(body["access_token"])
        assert access["sub"] == f"{CLIENT_ID}@clients"
        assert access["aud"] == f"{shared.issuer}api/v2/"
        assert access["gty"] == "client-credentials"
        assert access["azp"] == CLIENT_ID
        assert "read:users" in access["scope"].split()
        assert body["scope"] == access["scope"]

    async def test_narrower_scope(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", json=self._body(shared, scope="update:users read:users")
            )
        assert response.json()["scope"] == "read:users update:users"

    async def test_scope_not_granted(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", json=self._body(shared, scope="read:users delete:clients")
            )
        assert_error(
            response, 403, "access_denied", "Client has not been granted scopes: delete:clients"
        )

    async def test_without_client_grant(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post("/oauth/token", json=self._body(shared, audience=API))
        assert_error(
            response,
            403,
            "access_denied",
            f'Client is not authorized to access "{API}". '
            'You need to create a "client-grant" associated to this API.',
        )

    async def test_unknown_audience(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", json=self._body(shared, audience="https://nope.example")
            )
        assert_error(
            response,
            403,
            "access_denied",
            "Service not enabled within domain: https://nope.example",
        )

    async def test_bad_secret(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            response = await http.post(
                "/oauth/token", json=self._body(shared, client_secret="wrong")
            )
        assert_error(response, 401, "access_denied", "Unauthorized")

    async def test_public_client_cannot(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        data["clients"][0]["token_endpoint_auth_method"] = "none"
        running = emulator_factory(data)
        async with client_for(running) as http:
            response = await http.post("/oauth/token", json=self._body(running, client_secret=None))
        assert_error(response, 401, "access_denied", "Unauthorized")

    async def test_public_client_logs_in_without_secret(self, emulator_factory: Factory) -> None:
        data = demo_tenant()
        data["clients"][0]["token_endpoint_auth_method"] = "none"
        running = emulator_factory(data)
        async with client_for(running) as http:
            response = await http.post("/oauth/token", json=login_body(client_secret=None))
        assert response.status_code == 200


def _api_as(emulator_factory: Factory, **api: Any) -> RunningEmulator:
    """The demo tenant with its API changed, and a client grant to it for the demo client."""
    data = demo_tenant()
    data["resource_servers"][0].update(api)
    grant = {"client_id": CLIENT_ID, "audience": API, "scope": ["read:venues"]}
    data["client_grants"].append(grant)
    return emulator_factory(data)


class TestTokenProfiles:
    """An API's ``token_dialect`` and ``signing_alg`` (docs ``access-token-profiles``)."""

    async def test_auth0_profile(self, shared: RunningEmulator) -> None:
        async with client_for(shared) as http:
            body = await login(http)
        token = body["access_token"]
        assert jwt.get_unverified_header(token)["typ"] == "JWT"
        access = claims(token)
        names = ["iss", "sub", "aud", "iat", "exp", "scope", "gty", "azp", "permissions"]
        assert list(access) == names
        assert access["azp"] == CLIENT_ID

    @pytest.mark.parametrize("dialect", ["rfc9068_profile", "rfc9068_profile_authz"])
    async def test_rfc9068_profile(self, emulator_factory: Factory, dialect: str) -> None:
        running = _api_as(emulator_factory, token_dialect=dialect)
        async with client_for(running) as http:
            first = (await login(http))["access_token"]
            second = (await login(http))["access_token"]
        header = jwt.get_unverified_header(first)
        assert header["typ"] == "at+jwt"
        assert header["alg"] == "RS256"
        assert header["kid"] == running.tenant.current_key.kid
        access = jwt.decode(
            first,
            running.tenant.current_key.private_key.public_key(),
            algorithms=["RS256"],
            audience=API,
            issuer=running.issuer,
        )
        expected = ["iss", "sub", "aud", "client_id", "exp", "iat", "jti", "scope"]
        if dialect == "rfc9068_profile_authz":
            expected.append("permissions")
        assert list(access) == expected
        assert access["client_id"] == CLIENT_ID
        assert access["aud"] == [API, f"{running.issuer}userinfo"]
        assert access["jti"] != claims(second)["jti"]
        assert "gty" not in access
        assert "azp" not in access

    async def test_rfc9068_machine_token(self, emulator_factory: Factory) -> None:
        running = _api_as(emulator_factory, token_dialect="rfc9068_profile")
        async with client_for(running) as http:
            response = await http.post(
                "/oauth/token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "audience": API,
                },
            )
        token = response.json()["access_token"]
        assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
        access = claims(token)
        assert access["sub"] == f"{CLIENT_ID}@clients"
        assert access["client_id"] == CLIENT_ID
        assert access["aud"] == API
        assert "gty" not in access

    async def test_an_rfc9068_token_works_at_userinfo(self, emulator_factory: Factory) -> None:
        running = _api_as(emulator_factory, token_dialect="rfc9068_profile")
        async with client_for(running) as http:
            token = (await login(http))["access_token"]
            response = await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert response.json()["sub"] == "auth0|demo-admin"

    async def test_hs256_api_signs_with_its_signing_secret(self, emulator_factory: Factory) -> None:
        running = _api_as(emulator_factory, signing_alg="HS256", signing_secret="s" * 32)
        async with client_for(running) as http:
            token = (await login(http))["access_token"]
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "HS256"
        assert "kid" not in header
        access = jwt.decode(token, "s" * 32, algorithms=["HS256"], audience=API)
        # two audiences only for RS256 APIs (docs get-access-tokens, "Multiple audiences")
        assert access["aud"] == API
        assert access["sub"] == "auth0|demo-admin"

    async def test_hs256_without_a_configured_secret_makes_one(
        self, emulator_factory: Factory
    ) -> None:
        running = _api_as(emulator_factory, signing_alg="HS256")
        async with client_for(running) as http:
            token = (await login(http))["access_token"]
        secret = running.tenant.resource_servers[API].extra["signing_secret"]
        assert jwt.decode(token, secret, algorithms=["HS256"], audience=API)["aud"] == API

    @pytest.mark.parametrize("algorithm", ["RS512", "PS256"])
    async def test_other_asymmetric_algorithms(
        self, emulator_factory: Factory, algorithm: str
    ) -> None:
        running = _api_as(emulator_factory, signing_alg=algorithm)
        async with client_for(running) as http:
            token = (await login(http))["access_token"]
        header = jwt.get_unverified_header(token)
        assert (header["alg"], header["kid"]) == (algorithm, running.tenant.current_key.kid)
        access = jwt.decode(
            token,
            running.tenant.current_key.private_key.public_key(),
            algorithms=[algorithm],
            audience=API,
        )
        assert access["aud"] == API
