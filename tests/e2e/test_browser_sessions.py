"""Cookie mode: POST/DELETE /auth/session, the cookie on every protected route, transparent
refresh, CSRF, and bearer refresh bounded after expiry; against the emulator as a real server."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import create_engine, text

from app.auth.cipher import SessionCipher, generate_key
from tests.conftest import RunningEmulator
from tests.e2e.conftest import ADMIN, VIEWER, Recorder, bearer, emulator_stats, login

Factory = Callable[..., Any]
SPA = "http://127.0.0.1:5173"
COOKIE = "__Host-vg_session"
#: What the SPA's fetch sends with every change: its origin and the CSRF header.
FROM_SPA = {"Origin": SPA, "X-Requested-With": "fetch"}
VENUE = {
    "name": "Tempodrom",
    "address": "Möckernstraße 10",
    "city": "Berlin",
    "country": "DE",
    "timezone": "Europe/Berlin",
    "capacity": 3500,
}


def set_cookie(response: httpx.Response) -> SimpleCookie:
    """The response's Set-Cookie headers, parsed."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


async def browser_login(
    gateway: httpx.AsyncClient, user: tuple[str, str] = VIEWER, **headers: str
) -> tuple[str, httpx.Response]:
    """Log in in cookie mode from the SPA's origin; the cookie's value and the response."""
    response = await gateway.post(
        "/auth/session",
        json={"username": user[0], "password": user[1]},
        headers={**FROM_SPA, **headers},
    )
    assert response.status_code == 200, response.text
    return set_cookie(response)[COOKIE].value, response


#: A JWT's header and payload (base64url of '{"'), joined by a dot: random handles have no dot.
JWT = re.compile(r"eyJ[\w-]*\.eyJ")


def assert_sealed(sealed: bytes, settings: Any) -> None:
    """``sealed`` is the session cipher's encryption of a JWT, and no part of it in clear."""
    plain = SessionCipher(settings.session.keys).decrypt(sealed)
    assert plain is not None
    assert JWT.match(plain.decode())
    for part in plain.split(b"."):
        assert part not in sealed


def cookie(handle: str, **extra: str) -> dict[str, str]:
    """Request headers carrying the session cookie."""
    return {"Cookie": f"{COOKIE}={handle}", **extra}


def database_rows(settings: Any, query: str) -> list[Any]:
    """Rows of the test's SQLite database (synchronously, for a look at what is stored)."""
    url = settings.database.url.replace("+aiosqlite", "")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query)).all())
    finally:
        engine.dispose()


async def cookie_gateway(factory: Factory, **overrides: Any) -> tuple[httpx.AsyncClient, Any]:
    """A gateway whose SPA origin is :data:`SPA`."""
    client, settings = await factory(cors_origins=[SPA], **overrides)
    return client, settings


class TestCreateSession:
    async def test_sets_a_hardened_cookie_and_answers_the_profile(
        self, gateway_factory: Factory, emulator: RunningEmulator
    ) -> None:
        gateway, settings = await cookie_gateway(gateway_factory)
        handle, response = await browser_login(gateway)
        body = response.json()
        assert body["sub"] == "auth0|demo-viewer"
        assert body["email"] == "viewer@venues.local"
        assert body["permissions"] == ["read:venues"]
        assert body["expires_at"] > time.time()
        assert "access_token" not in response.text
        assert "refresh_token" not in response.text
        assert response.headers["cache-control"] == "no-store"
        morsel = set_cookie(response)[COOKIE]
        assert morsel["httponly"]
        assert morsel["secure"]
        assert morsel["samesite"] == "strict"
        assert morsel["path"] == "/"
        assert not morsel["domain"]
        assert int(morsel["max-age"]) == settings.session.lifetime_s
        # an opaque random handle, not a token: no JWT, and nothing the emulator issued
        assert len(handle) == 43
        assert "." not in handle
        for issued in emulator.tenant.refresh_tokens:
            assert handle not in issued
            assert issued not in handle
        [(stored_handle, sealed)] = database_rows(
            settings, "SELECT browser_handle, browser_token FROM auth_sessions"
        )
        assert stored_handle != handle
        assert len(stored_handle) == 64
        assert_sealed(sealed, settings)  # the access token is kept encrypted

    async def test_no_token_reaches_the_browser(
        self, gateway_factory: Factory, recorder: Recorder
    ) -> None:
        """The access token behind the cookie is in no answer of cookie mode, cookie included."""
        gateway, settings = await cookie_gateway(gateway_factory, browser={"refresh_margin_s": 0})
        handle, _ = await browser_login(gateway, ADMIN)
        await gateway.get("/auth/me", headers=cookie(handle))
        await gateway.post("/venues", json=VENUE, headers=cookie(handle, **FROM_SPA))
        await gateway.delete("/auth/session", headers=cookie(handle, **FROM_SPA))
        [(token_hash,)] = database_rows(settings, "SELECT token_hash FROM auth_session_tokens")
        assert recorder.responses
        for status, headers, body in recorder.responses:
            for part in (*headers.split(), *body.split('"')):
                assert hashlib.sha256(part.encode()).hexdigest() != token_hash, status
                assert not JWT.search(part), status  # no JWT at all

    async def test_the_cookie_is_worthless_as_a_bearer_token(
        self, gateway_factory: Factory
    ) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        handle, _ = await browser_login(gateway)
        assert (await gateway.get("/auth/me", headers=cookie(handle))).status_code == 200
        response = await gateway.get("/auth/me", headers=bearer(handle))
        assert response.status_code == 401

    async def test_lax_when_configured(self, gateway_factory: Factory) -> None:
        gateway, _ = await cookie_gateway(gateway_factory, browser={"same_site": "lax"})
        _, response = await browser_login(gateway)
        assert set_cookie(response)[COOKIE]["samesite"] == "lax"

    async def test_wrong_password_sets_no_cookie(self, gateway_factory: Factory) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        response = await gateway.post(
            "/auth/session",
            json={"username": VIEWER[0], "password": "Not-The-Passw0rd!"},
            headers=FROM_SPA,
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_grant"
        assert "set-cookie" not in response.headers

    @pytest.mark.parametrize(
        ("headers", "why"),
        [
            ({"Origin": SPA}, "X-Requested-With"),
            ({"Origin": "https://evil.example", "X-Requested-With": "x"}, "origin"),
            ({"Origin": "null", "X-Requested-With": "x"}, "origin"),
            ({"X-Requested-With": "x"}, "Origin"),
        ],
    )
    async def test_login_csrf_is_refused(
        self, gateway_factory: Factory, headers: dict[str, str], why: str
    ) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        response = await gateway.post(
            "/auth/session", json={"username": VIEWER[0], "password": VIEWER[1]}, headers=headers
        )
        assert response.status_code == 403
        assert response.json()["error"] == "csrf_failed"
        assert why in response.json()["error_description"]
        assert "set-cookie" not in response.headers

    async def test_bad_bodies_are_4xx(self, gateway_factory: Factory) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        bad = await gateway.post(
            "/auth/session",
            content=b"{",
            headers={**FROM_SPA, "content-type": "application/json"},
        )
        assert bad.status_code == 400
        missing = await gateway.post("/auth/session", json={"username": "x"}, headers=FROM_SPA)
        assert missing.status_code == 422
        assert missing.json()["error"] == "invalid_request"


class TestCookieRequests:
    async def test_reads_need_no_csrf_headers(self, gateway_factory: Factory) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        handle, _ = await browser_login(gateway)
        me = await gateway.get("/auth/me", headers=cookie(handle))
        assert me.status_code == 200
        assert me.json()["sub"] == "auth0|demo-viewer"
        assert me.headers["cache-control"] == "private, no-store"  # no shared cache keeps it
        assert (await gateway.get("/venues", headers=cookie(handle))).status_code == 200

    async def test_changes_need_origin_and_x_requested_with(self, gateway_factory: Factory) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        handle, _ = await browser_login(gateway, ADMIN)
        for headers in (
            {},
            {"Origin": SPA},
            {"X-Requested-With": "fetch"},
            {"Origin": "http://127.0.0.1:5174", "X-Requested-With": "fetch"},
            {"Referer": "https://evil.example/page", "X-Requested-With": "fetch"},
        ):
            response = await gateway.post("/venues", json=VENUE, headers=cookie(handle, **headers))
            assert response.status_code == 403, headers
            assert response.json()["error"] == "csrf_failed"
        created = await gateway.post("/venues", json=VENUE, headers=cookie(handle, **FROM_SPA))
        assert created.status_code == 201, created.text
        # a Referer stands in for a missing Origin; the gateway's own origin is allowed too
        venue = created.headers["location"]
        patched = await gateway.patch(
            venue,
            json={"capacity": 4000},
            headers=cookie(
                handle,
                **{"If-Match": created.headers["etag"], "X-Requested-With": "fetch"},
                Referer=f"{SPA}/venues",
            ),
        )
        assert patched.status_code == 200, patched.text
        deleted = await gateway.delete(
            venue, headers=cookie(handle, Origin="http://gateway", **{"X-Requested-With": "1"})
        )
        assert deleted.status_code == 204

    @pytest.mark.parametrize("trusted", [True, False])
    async def test_one_origin_behind_a_proxy_that_terminates_tls(
        self, gateway_factory: Factory, trusted: bool
    ) -> None:
        """The SPA and the gateway on https://venues.example through a proxy (the test client's
        127.0.0.1), which talks plain http to the gateway: its own origin passes only when the
        proxy is trusted to say what the browser used."""
        proxies = ["127.0.0.0/8"] if trusted else []
        gateway, _ = await cookie_gateway(gateway_factory, trusted_proxies=proxies)
        handle, _ = await browser_login(gateway, ADMIN)
        through_proxy = {
            "Origin": "https://venues.example",
            "X-Requested-With": "fetch",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "venues.example",
        }
        response = await gateway.post(
            "/venues", json=VENUE, headers=cookie(handle, **through_proxy)
        )
        if trusted:
            assert response.status_code == 201, response.text
        else:
            assert response.status_code == 403
            assert response.json()["error"] == "csrf_failed"

    async def test_bearer_requests_are_not_checked(self, gateway_factory: Factory) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        token = await login(gateway, ADMIN)
        response = await gateway.post("/venues", json=VENUE, headers=bearer(token))
        assert response.status_code == 201

    async def test_a_bearer_header_wins_over_the_cookie(self, gateway_factory: Factory) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        admin_cookie, _ = await browser_login(gateway, ADMIN)
        viewer_token = await login(gateway, VIEWER)
        me = await gateway.get("/auth/me", headers={**cookie(admin_cookie), **bearer(viewer_token)})
        assert me.json()["sub"] == "auth0|demo-viewer"
        response = await gateway.post(
            "/venues", json=VENUE, headers={**cookie(admin_cookie), **bearer(viewer_token)}
        )
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"

    @pytest.mark.parametrize("value", ["not-a-handle", "A" * 43, "x" * 5000])
    async def test_an_unknown_cookie_is_401_and_cleared(
        self, gateway_factory: Factory, value: str
    ) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        response = await gateway.get("/auth/me", headers=cookie(value))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        cleared = set_cookie(response)[COOKIE]
        assert cleared.value == ""
        assert int(cleared["max-age"]) == 0

    async def test_cors_allows_credentials_for_the_configured_origin_only(
        self, gateway_factory: Factory
    ) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        preflight = {
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "content-type, if-match, x-requested-with",
        }
        allowed = await gateway.options("/venues/x", headers={"Origin": SPA, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == SPA
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert "x-requested-with" in allowed.headers["access-control-allow-headers"].lower()
        other = await gateway.options(
            "/venues/x", headers={"Origin": "http://127.0.0.1:5174", **preflight}
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        read = await gateway.get("/venues", headers={"Origin": "http://127.0.0.1:5174"})
        assert "access-control-allow-origin" not in read.headers  # no page there may read it


class TestTransparentRefresh:
    async def test_an_expired_token_is_refreshed_on_the_same_request(
        self,
        gateway_factory: Factory,
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
    ) -> None:
        gateway, settings = await cookie_gateway(
            gateway_factory, auth0={"leeway_s": 0}, browser={"refresh_margin_s": 0}
        )
        # the emulator's clock an hour less three seconds behind: its token expires in 3 s
        emulator.tenant.clock_offset_s = -3597
        handle, response = await browser_login(gateway)
        expires_at = response.json()["expires_at"]
        emulator.tenant.clock_offset_s = 0
        while time.time() <= expires_at + 0.05:  # noqa: ASYNC110 - waiting on the wall clock
            await asyncio.sleep(0.1)
        await emulator_http.post("/__emulator/stats/reset")
        me = await gateway.get("/auth/me", headers=cookie(handle))
        assert me.status_code == 200, me.text
        assert me.json()["expires_at"] > time.time() + 3000
        assert "set-cookie" not in me.headers  # the handle stays; the token behind it moved
        stats = await emulator_stats(emulator_http)
        assert stats["grants"].get("refresh_token") == 1
        again = await gateway.get("/venues", headers=cookie(handle))
        assert again.status_code == 200
        assert (await emulator_stats(emulator_http))["grants"].get("refresh_token") == 1
        [(sealed,)] = database_rows(settings, "SELECT browser_token FROM auth_sessions")
        assert_sealed(sealed, settings)

    async def test_many_tabs_on_two_workers_make_one_refresh(
        self,
        gateway_factory: Factory,
        emulator: RunningEmulator,
        emulator_http: httpx.AsyncClient,
        database_url: str,
    ) -> None:
        """On SQLite and PostgreSQL: the lease and the compare-and-set hold on both."""
        margin = {"refresh_margin_s": 120}
        database = {"url": database_url}
        first, settings = await cookie_gateway(gateway_factory, browser=margin, database=database)
        second, _ = await cookie_gateway(
            gateway_factory,
            browser=margin,
            database=database,
            cache={"namespace": settings.cache.namespace},
        )
        emulator.tenant.clock_offset_s = -3540  # the token expires within the margin
        handle, _ = await browser_login(first)
        emulator.tenant.clock_offset_s = 0
        await emulator_http.post("/__emulator/stats/reset")
        tabs = [first, second] * 8
        answers = await asyncio.gather(
            *(tab.get("/auth/me", headers=cookie(handle)) for tab in tabs)
        )
        assert [a.status_code for a in answers] == [200] * len(tabs), [a.text for a in answers]
        assert len({a.json()["expires_at"] for a in answers}) == 1
        assert (await emulator_stats(emulator_http))["grants"].get("refresh_token") == 1
        live = [t for t in emulator.tenant.refresh_tokens.values() if emulator.tenant.is_live(t)]
        assert len(live) == 1, "the family must still be alive (no reuse detected)"

    async def test_a_refresh_auth0_refuses_ends_the_browser_session(
        self, gateway_factory: Factory, emulator: RunningEmulator
    ) -> None:
        gateway, _ = await cookie_gateway(gateway_factory, browser={"refresh_margin_s": 120})
        emulator.tenant.clock_offset_s = -3540
        handle, _ = await browser_login(gateway)
        emulator.tenant.clock_offset_s = 0
        for token in emulator.tenant.refresh_tokens.values():
            emulator.tenant.revoke_family(token.family_id)
        response = await gateway.get("/auth/me", headers=cookie(handle))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_grant"
        assert int(set_cookie(response)[COOKIE]["max-age"]) == 0


class TestDeleteSession:
    async def test_logout_holds_on_every_worker(
        self, gateway_factory: Factory, emulator: RunningEmulator
    ) -> None:
        # one deployment: one session key; a quick revocation sync
        session = {"keys": [generate_key()], "revocation_sync_s": 0.5}
        first, settings = await cookie_gateway(gateway_factory, session=session)
        second, _ = await cookie_gateway(
            gateway_factory,
            session=session,
            cache={"namespace": settings.cache.namespace},
        )
        handle, _ = await browser_login(first)
        assert (await second.get("/auth/me", headers=cookie(handle))).status_code == 200
        response = await first.delete("/auth/session", headers=cookie(handle, **FROM_SPA))
        assert response.status_code == 204
        cleared = set_cookie(response)[COOKIE]
        assert cleared.value == ""
        assert int(cleared["max-age"]) == 0
        after = await first.get("/auth/me", headers=cookie(handle))
        assert after.status_code == 401  # at once on the worker that logged out
        # the other worker, which had the session in its in-process tier, learns of the logout
        # through the revocation list within its sync interval
        deadline = time.monotonic() + 5
        while (await second.get("/auth/me", headers=cookie(handle))).status_code != 401:
            assert time.monotonic() < deadline, "the logout never reached the other worker"
            await asyncio.sleep(0.05)
        assert not any(emulator.tenant.is_live(t) for t in emulator.tenant.refresh_tokens.values())
        [(handle_hash, sealed, reason)] = database_rows(
            settings, "SELECT browser_handle, browser_token, end_reason FROM auth_sessions"
        )
        assert (handle_hash, sealed, reason) == (None, None, "logout")

    async def test_logout_needs_the_csrf_headers(self, gateway_factory: Factory) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        handle, _ = await browser_login(gateway)
        response = await gateway.delete("/auth/session", headers=cookie(handle, Origin=SPA))
        assert response.status_code == 403
        assert response.json()["error"] == "csrf_failed"
        assert (await gateway.get("/auth/me", headers=cookie(handle))).status_code == 200

    async def test_logout_without_a_session_still_clears(self, gateway_factory: Factory) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        response = await gateway.delete("/auth/session", headers=FROM_SPA)
        assert response.status_code == 204
        assert int(set_cookie(response)[COOKIE]["max-age"]) == 0

    async def test_logging_in_again_ends_the_previous_browser_session(
        self, gateway_factory: Factory, emulator: RunningEmulator
    ) -> None:
        gateway, _ = await cookie_gateway(gateway_factory)
        old, _ = await browser_login(gateway)
        emulator.tenant.clock_offset_s += 1  # Auth0 tokens of one second are identical
        new, _ = await browser_login(gateway, ADMIN, Cookie=f"{COOKIE}={old}")
        assert (await gateway.get("/auth/me", headers=cookie(old))).status_code == 401
        assert (await gateway.get("/auth/me", headers=cookie(new))).status_code == 200


class TestBearerRefreshWindow:
    async def test_too_long_after_expiry_is_invalid_grant(
        self, gateway_factory: Factory, emulator: RunningEmulator
    ) -> None:
        gateway, _ = await gateway_factory(
            auth0={"leeway_s": 0}, session={"refresh_after_expiry_s": 1}
        )
        emulator.tenant.clock_offset_s = -3597  # the token expires in 3 s
        token = await login(gateway)
        emulator.tenant.clock_offset_s = 0
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        while time.time() <= exp + 1.05:  # noqa: ASYNC110 - waiting on the wall clock
            await asyncio.sleep(0.1)
        response = await gateway.post("/auth/refresh", headers=bearer(token))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_grant"
        assert "too long ago" in response.json()["error_description"]
