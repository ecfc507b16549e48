"""The security dependency: cached validation, rejection without upstream calls, coalescing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from settings import Settings
from tests.conftest import RunningEmulator
from tests.e2e.conftest import INTROSPECT_SECRET, VIEWER, bearer, emulator_stats, login

SPRAY_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def direct_token(
    emulator_http: httpx.AsyncClient, user: tuple[str, str] = VIEWER, **extra: Any
) -> str:
    """An access token straight from the emulator, as an SPA holding its own token has."""
    response = await emulator_http.post(
        "/oauth/token",
        json={
            "grant_type": "http://auth0.com/oauth/grant-type/password-realm",
            "realm": "Username-Password-Authentication",
            "username": user[0],
            "password": user[1],
            "client_id": "local-gateway",
            "client_secret": "local-gateway-secret",
            "audience": "https://api.venues.local",
            "scope": "openid profile email",
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def forged(emulator: RunningEmulator, **changes: Any) -> str:
    """A token signed by the emulator's real key with some claims changed."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": emulator.issuer,
        "sub": "auth0|demo-viewer",
        "aud": ["https://api.venues.local", f"{emulator.issuer}userinfo"],
        "iat": now,
        "exp": now + 600,
        "azp": "local-gateway",
        "scope": "openid",
        "permissions": ["read:venues"],
    }
    claims.update(changes)
    return emulator.tenant.sign({k: v for k, v in claims.items() if v is not None})


def signed_by_stranger(emulator: RunningEmulator) -> str:
    """Right claims and the tenant's kid, but another key's signature."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "iss": emulator.issuer,
        "sub": "auth0|demo-admin",
        "aud": "https://api.venues.local",
        "iat": now,
        "exp": now + 600,
        "permissions": ["delete:venues"],
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": emulator.tenant.keys[0].kid})


class TestRejection:
    async def test_bad_tokens_are_401_without_any_call_to_auth0(
        self,
        gateway: httpx.AsyncClient,
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        # one good request warms the JWKS cache; after that nothing may reach the emulator
        good = await direct_token(emulator_http)
        assert (await gateway.get("/auth/me", headers=bearer(good))).status_code == 200
        await emulator_http.post("/__emulator/stats/reset")
        now = int(time.time())
        bad_tokens = {
            "malformed": "not-a-token",
            "three dots": "a.b.c",
            "expired": forged(emulator, exp=now - 3600, iat=now - 7200),
            "not yet valid": forged(emulator, nbf=now + 3600),
            "wrong audience": forged(emulator, aud="https://other.api"),
            "wrong issuer": forged(emulator, iss="https://evil.auth0.com/"),
            "issuer without slash": forged(emulator, iss=emulator.issuer.rstrip("/")),
            "wrongly signed": signed_by_stranger(emulator),
            "alg none": jwt.encode({"sub": "x", "exp": now + 60}, "", algorithm="none"),
            "ten kilobytes": "e" * 10_000,
        }
        for name, token in bad_tokens.items():
            response = await gateway.get("/auth/me", headers=bearer(token))
            assert response.status_code == 401, name
            assert response.headers["www-authenticate"].startswith("Bearer"), name
            assert response.json()["error"] == "invalid_token", name
        assert (await emulator_stats(emulator_http))["requests"] == {}

    async def test_odd_authorization_headers_are_401(self, gateway: httpx.AsyncClient) -> None:
        for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "token abc", "Bearer a b"):
            response = await gateway.get("/auth/me", headers={"Authorization": header})
            assert response.status_code == 401, header


class TestCachedValidation:
    async def test_fifty_concurrent_first_requests_make_one_userinfo_call(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        token = await direct_token(emulator_http)
        await emulator_http.post("/__emulator/stats/reset")
        responses = await asyncio.gather(
            *(gateway.get("/auth/me", headers=bearer(token)) for _ in range(50))
        )
        assert {r.status_code for r in responses} == {200}
        assert responses[0].json()["email"] == VIEWER[0]
        requests = (await emulator_stats(emulator_http))["requests"]
        assert requests.get("GET /userinfo", 0) <= 1

    async def test_profile_is_fetched_once_per_user_not_per_token(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        await emulator_http.post("/__emulator/stats/reset")
        for _ in range(3):
            token = await direct_token(emulator_http)
            assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
        requests = (await emulator_stats(emulator_http))["requests"]
        assert requests.get("GET /userinfo", 0) == 1

    async def test_userinfo_rate_limited_still_serves_the_valid_token(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        token = await direct_token(emulator_http)
        await emulator_http.post(
            "/__emulator/faults", json={"path": "/userinfo", "status": 429, "count": 5}
        )
        response = await gateway.get("/auth/me", headers=bearer(token))
        assert response.status_code == 200
        assert response.json()["email"] is None

    async def test_a_kid_spray_cannot_keep_logins_out_after_a_rotation(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        token = await login(gateway)
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        # tokens with made-up kids spend the refetch allowance of presented tokens
        for i in range(5):
            forged = jwt.encode(
                claims, SPRAY_KEY, algorithm="RS256", headers={**header, "kid": f"spray-{i}"}
            )
            assert (await gateway.get("/auth/me", headers=bearer(forged))).status_code == 401
        # a key the gateway has never seen published (a rotation to the announced next key
        # would need no refetch at all: see below)
        replaced = await emulator_http.post("/__emulator/keys/replace-current")
        assert replaced.status_code == 200
        # a login right after it: Auth0's token has the new kid, and it is found
        fresh = await gateway.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
        assert fresh.status_code == 200, fresh.text
        new_kid = jwt.get_unverified_header(fresh.json()["access_token"])["kid"]
        assert new_kid == replaced.json()["kid"]

    async def test_a_rotation_to_the_published_next_key_costs_no_refetch(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        # Auth0 publishes the next key before it signs with it, so the key set the gateway
        # cached for the first token already holds the key of the tokens after a rotation.
        before = await direct_token(emulator_http)
        assert (await gateway.get("/auth/me", headers=bearer(before))).status_code == 200
        rotated = await emulator_http.post("/__emulator/keys/rotate")
        assert rotated.status_code == 200
        after = await direct_token(emulator_http)
        assert jwt.get_unverified_header(after)["kid"] == rotated.json()["kid"]
        await emulator_http.post("/__emulator/stats/reset")
        for _ in range(3):
            assert (await gateway.get("/auth/me", headers=bearer(after))).status_code == 200
        requests = (await emulator_stats(emulator_http))["requests"]
        assert requests.get("GET /.well-known/jwks.json", 0) == 0
        # the previous key stays published until it is revoked: its tokens still work
        assert (await gateway.get("/auth/me", headers=bearer(before))).status_code == 200

    async def test_an_unannounced_key_needs_one_jwks_refetch(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        before = await direct_token(emulator_http)
        assert (await gateway.get("/auth/me", headers=bearer(before))).status_code == 200
        replaced = await emulator_http.post("/__emulator/keys/replace-current")
        assert replaced.status_code == 200
        after = await direct_token(emulator_http)
        await emulator_http.post("/__emulator/stats/reset")
        for _ in range(3):
            assert (await gateway.get("/auth/me", headers=bearer(after))).status_code == 200
        requests = (await emulator_stats(emulator_http))["requests"]
        assert requests.get("GET /.well-known/jwks.json") == 1
        assert (await gateway.get("/auth/me", headers=bearer(before))).status_code == 200

    async def test_tokens_of_the_rfc9068_profile_are_accepted(
        self,
        gateway: httpx.AsyncClient,
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        api = emulator.tenant.resource_servers["https://api.venues.local"]
        api.token_dialect = "rfc9068_profile_authz"
        token = await direct_token(emulator_http)
        assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
        claims = jwt.decode(token, options={"verify_signature": False})
        assert "azp" not in claims
        assert claims["client_id"] == "local-gateway"
        me = await gateway.get("/auth/me", headers=bearer(token))
        assert me.status_code == 200, me.text
        assert me.json()["sub"] == "auth0|demo-viewer"
        assert me.json()["permissions"] == ["read:venues"]
        introspected = await gateway.post(
            "/tokens/introspect", data={"token": token}, auth=("venue-service", INTROSPECT_SECRET)
        )
        assert introspected.json()["client_id"] == "local-gateway"
        # the gateway's own login takes such a token from Auth0 too
        logged_in = await login(gateway)
        assert jwt.get_unverified_header(logged_in)["typ"] == "at+jwt"
        assert (await gateway.get("/auth/me", headers=bearer(logged_in))).status_code == 200

    async def test_opaque_token_is_validated_by_userinfo_when_accepted(
        self, gateway_factory: Callable[..., Any], emulator_http: httpx.AsyncClient
    ) -> None:
        gateway, _ = await gateway_factory(auth0={"accept_opaque_tokens": True})
        response = await emulator_http.post(
            "/oauth/token",
            json={
                "grant_type": "password",
                "username": VIEWER[0],
                "password": VIEWER[1],
                "client_id": "local-gateway",
                "client_secret": "local-gateway-secret",
                "scope": "openid email",
            },
        )
        opaque = response.json()["access_token"]
        # Auth0's token without an audience: an encrypted JWE, five parts
        assert opaque.count(".") == 4
        me = await gateway.get("/auth/me", headers=bearer(opaque))
        assert me.status_code == 200
        assert me.json()["sub"] == "auth0|demo-viewer"
        assert me.json()["permissions"] == []

    async def test_opaque_looking_strings_cost_no_auth0_call_by_default(
        self, gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
    ) -> None:
        await emulator_http.post("/__emulator/stats/reset")
        for i in range(20):
            response = await gateway.get("/auth/me", headers=bearer(f"{i:02d}" + "A" * 30))
            assert response.status_code == 401
        assert (await emulator_stats(emulator_http))["requests"] == {}

    async def test_a_rejected_opaque_token_is_not_asked_about_twice(
        self, gateway_factory: Callable[..., Any], emulator_http: httpx.AsyncClient
    ) -> None:
        gateway, _ = await gateway_factory(auth0={"accept_opaque_tokens": True})
        await emulator_http.post("/__emulator/stats/reset")
        for _ in range(3):
            response = await gateway.get("/auth/me", headers=bearer("B" * 32))
            assert response.status_code == 401
        requests = (await emulator_stats(emulator_http))["requests"]
        assert requests.get("GET /userinfo") == 1


class TestIntrospection:
    async def test_active_token(self, gateway: httpx.AsyncClient) -> None:
        token = await login(gateway)
        response = await gateway.post(
            "/tokens/introspect",
            data={"token": token},
            auth=("venue-service", INTROSPECT_SECRET),
        )
        assert response.status_code == 200
        body = response.json()
        assert body["active"] is True
        assert body["sub"] == "auth0|demo-viewer"
        assert body["client_id"] == "local-gateway"
        assert body["email"] == VIEWER[0]
        assert body["exp"] > time.time()

    @pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
    async def test_invalid_tokens_are_inactive(
        self, gateway: httpx.AsyncClient, token: str
    ) -> None:
        response = await gateway.post(
            "/tokens/introspect",
            data={"token": token},
            auth=("venue-service", INTROSPECT_SECRET),
        )
        assert response.status_code in {200, 422}
        if response.status_code == 200:
            assert response.json() == {"active": False}

    async def test_logged_out_token_is_inactive(self, gateway: httpx.AsyncClient) -> None:
        token = await login(gateway)
        await gateway.post("/auth/logout", headers=bearer(token))
        response = await gateway.post(
            "/tokens/introspect",
            data={"token": token},
            auth=("venue-service", INTROSPECT_SECRET),
        )
        assert response.json() == {"active": False}

    @pytest.mark.parametrize(
        "auth", [None, ("venue-service", "wrong"), ("stranger", INTROSPECT_SECRET)]
    )
    async def test_callers_need_basic_credentials(
        self, gateway: httpx.AsyncClient, auth: tuple[str, str] | None
    ) -> None:
        if auth is None:
            response = await gateway.post("/tokens/introspect", data={"token": "x"})
        else:
            response = await gateway.post("/tokens/introspect", data={"token": "x"}, auth=auth)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        assert response.json()["error"] == "invalid_client"

    @pytest.mark.parametrize("encoded", ["not base64!", "bm8tY29sb24=", "w7w6w7w="])
    async def test_malformed_basic_credentials_are_the_guards_answer(
        self, gateway: httpx.AsyncClient, encoded: str
    ) -> None:
        """Bad base64, no colon, a non-ASCII secret: refused (and counted) by the guard."""
        response = await gateway.post(
            "/tokens/introspect", data={"token": "x"}, headers={"Authorization": f"Basic {encoded}"}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        assert response.json()["error"] == "invalid_client"
        described = response.json()["error_description"]
        assert described in {"Malformed Basic credentials.", "Unknown client or wrong secret."}

    async def test_guessing_is_throttled_per_client_and_per_ip(
        self, gateway_factory: Callable[..., Any]
    ) -> None:
        gateway, _ = await gateway_factory(
            introspection={
                "clients": {"venue-service": INTROSPECT_SECRET, "other": INTROSPECT_SECRET},
                "failures_per_client_per_minute": 3,
                "failures_per_ip_per_minute": 5,
            }
        )

        async def introspect(client: str, secret: str) -> httpx.Response:
            response: httpx.Response = await gateway.post(
                "/tokens/introspect", data={"token": "x"}, auth=(client, secret)
            )
            return response

        for _ in range(3):
            assert (await introspect("venue-service", "wrong")).status_code == 401
        # the client id is throttled: even the right secret gets 429 until the window ends
        throttled = await introspect("venue-service", INTROSPECT_SECRET)
        assert throttled.status_code == 429
        assert throttled.json()["error"] == "too_many_requests"
        assert 0 < int(throttled.headers["retry-after"]) <= 60
        # another client from the same address: two more failures reach the IP's limit
        assert (await introspect("other", INTROSPECT_SECRET)).status_code == 200
        for _ in range(2):
            assert (await introspect("other", "wrong")).status_code == 401
        assert (await introspect("other", INTROSPECT_SECRET)).status_code == 429


def test_short_introspection_secrets_are_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="at least 32 characters; too short for: svc") as error:
        Settings(introspection={"clients": {"svc": "short-secret"}})
    assert "short-secret" not in str(error.value)


async def test_a_token_in_its_expiry_leeway_does_not_wait_on_its_own_lock(
    gateway_factory: Callable[..., Any],
    emulator: RunningEmulator,
    emulator_http: httpx.AsyncClient,
) -> None:
    """Past ``exp`` but within the leeway the answer is not cached; the lock must not be kept."""
    emulator.tenant.resource_servers["https://api.venues.local"].token_lifetime = 1
    gateway, settings = await gateway_factory(auth0={"leeway_s": 30})
    token = await direct_token(emulator_http)
    await asyncio.sleep(1.5)
    for _ in range(3):
        started = time.monotonic()
        assert (await gateway.get("/auth/me", headers=bearer(token))).status_code == 200
        assert time.monotonic() - started < settings.auth0.lock_wait_s
