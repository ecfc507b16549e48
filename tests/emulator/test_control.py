"""The /__emulator/ control routes: stats, faults, clock, key rotation, refresh-token listing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt

from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    claims,
    client_for,
    login,
    login_body,
    refresh,
)
from tests.servers import free_port, wait_for_port


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _management_token(http: httpx.AsyncClient, issuer: str) -> str:
    response = await http.post(
        "/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "audience": f"{issuer}api/v2/",
        },
    )
    token: str = response.json()["access_token"]
    return token


class TestStats:
    async def test_counts_routes_and_grants(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            tokens = await login(http)
            await refresh(http, tokens["refresh_token"])
            await http.post("/oauth/token", json=login_body(password="wrong"))
            await http.post("/oauth/token", json=login_body(grant_type="password", realm=None))
            management = await _management_token(http, emulator.issuer)
            await http.get("/userinfo", headers=_bearer(tokens["access_token"]))
            await http.get("/api/v2/users/auth0%7Cdemo-admin", headers=_bearer(management))
            await http.get("/no/such/path")
            await http.get("/__emulator/clock")
            stats = (await http.get("/__emulator/stats")).json()
        assert stats["requests"] == {
            "POST /oauth/token": 5,
            "GET /userinfo": 1,
            "GET /api/v2/users/{user_id}": 1,
            "GET /no/such/path": 1,
        }
        # Failed grants are requests, not grants.
        assert stats["grants"] == {
            "password-realm": 1,
            "refresh_token": 1,
            "password": 1,
            "client_credentials": 1,
        }

    async def test_reset(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            await login(http)
            assert (await http.post("/__emulator/stats/reset")).status_code == 204
            stats = (await http.get("/__emulator/stats")).json()
        assert stats == {"requests": {}, "grants": {}}


class TestFaults:
    async def test_status_for_count_calls(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["access_token"]
            created = await http.post(
                "/__emulator/faults", json={"path": "/userinfo", "status": 503, "count": 2}
            )
            assert created.status_code == 201
            statuses = [
                (await http.get("/userinfo", headers=_bearer(token))).status_code for _ in range(3)
            ]
            assert (await http.get("/__emulator/faults")).json() == []
            stats = (await http.get("/__emulator/stats")).json()
        assert statuses == [503, 503, 200]
        assert stats["requests"]["GET /userinfo"] == 3

    async def test_token_endpoint_fault_does_not_reach_the_grant(
        self, emulator: RunningEmulator
    ) -> None:
        async with client_for(emulator) as http:
            tokens = await login(http)
            await http.post(
                "/__emulator/faults",
                json={
                    "path": "/oauth/token",
                    "status": 429,
                    "headers": {"Retry-After": "1"},
                },
            )
            limited = await refresh(http, tokens["refresh_token"])
            # The refresh token was not spent by the failed call.
            retried = await refresh(http, tokens["refresh_token"])
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert limited.json()["error"] == "too_many_requests"
        assert retried.status_code == 200

    async def test_template_path_and_custom_body(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            management = await _management_token(http, emulator.issuer)
            await http.post(
                "/__emulator/faults",
                json={
                    "path": "/api/v2/users/{user_id}",
                    "status": 500,
                    "body": {"statusCode": 500, "error": "Internal Server Error"},
                },
            )
            failed = await http.get("/api/v2/users/auth0%7Cdemo-admin", headers=_bearer(management))
            stats = (await http.get("/__emulator/stats")).json()
        assert failed.status_code == 500
        assert failed.json() == {"statusCode": 500, "error": "Internal Server Error"}
        assert stats["requests"]["GET /api/v2/users/{user_id}"] == 1

    async def test_delay(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            await http.post(
                "/__emulator/faults",
                json={"path": "/.well-known/jwks.json", "status": None, "delay_ms": 300},
            )
            started = time.monotonic()
            slow = await http.get("/.well-known/jwks.json")
            slow_s = time.monotonic() - started
            started = time.monotonic()
            await http.get("/.well-known/jwks.json")
            fast_s = time.monotonic() - started
        assert slow.status_code == 200
        assert slow.json()["keys"]
        assert slow_s >= 0.3
        assert fast_s < 0.3

    async def test_delay_then_status(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            await http.post(
                "/__emulator/faults",
                json={"path": "/oauth/token", "status": 502, "delay_ms": 300},
            )
            started = time.monotonic()
            response = await http.post("/oauth/token", json=login_body())
            elapsed_s = time.monotonic() - started
        assert response.status_code == 502
        assert elapsed_s >= 0.3

    async def test_clear(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            await http.post("/__emulator/faults", json={"path": "/oauth/token", "status": 503})
            assert (await http.delete("/__emulator/faults")).status_code == 204
            response = await http.post("/oauth/token", json=login_body())
        assert response.status_code == 200

    async def test_bad_fault(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            response = await http.post("/__emulator/faults", json={"path": "x", "status": 42})
        assert response.status_code == 422

    async def test_control_routes_are_never_faulted(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            await http.post("/__emulator/faults", json={"path": "/__emulator/stats", "status": 500})
            response = await http.get("/__emulator/stats")
        assert response.status_code == 200


class TestClock:
    async def test_tokens_expire_when_the_clock_moves(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["access_token"]
            assert (await http.get("/userinfo", headers=_bearer(token))).status_code == 200
            moved = await http.post("/__emulator/clock", json={"offset_s": 3600})
            assert moved.json()["offset_s"] == 3600
            clock = (await http.get("/__emulator/clock")).json()
            expired = await http.get("/userinfo", headers=_bearer(token))
            # Tokens minted now carry the emulator's time.
            fresh = (await login(http))["access_token"]
        assert clock["now"] > time.time() + 3500
        assert expired.status_code == 401
        assert "The token has expired" in expired.headers["www-authenticate"]
        assert claims(fresh)["iat"] > time.time() + 3500


class TestKeys:
    async def test_rotation(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            old_token = (await login(http))["access_token"]
            old_kid = jwt.get_unverified_header(old_token)["kid"]
            rotated = await http.post("/__emulator/keys/rotate")
            new_kid = rotated.json()["kid"]
            new_token = (await login(http))["access_token"]
            kids = [k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]]
            old_still_good = await http.get("/userinfo", headers=_bearer(old_token))
        assert new_kid != old_kid
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid
        assert kids == [new_kid, old_kid]
        assert old_still_good.status_code == 200


class TestRefreshTokenListing:
    async def test_lists_tokens_with_liveness(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            first = (await login(http))["refresh_token"]
            second = (await refresh(http, first)).json()["refresh_token"]
            rows = (await http.get("/__emulator/refresh-tokens")).json()
        assert [(r["token"], r["live"]) for r in rows] == [(first, False), (second, True)]
        assert rows[0]["family_id"] == rows[1]["family_id"]
        assert {r["client_id"] for r in rows} == {CLIENT_ID}
        assert {r["user_id"] for r in rows} == {"auth0|demo-admin"}


def test_server_module_serves_the_demo_tenant(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-m", "emulator.server", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for_port(port)
        doc = httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration").json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    assert doc["issuer"] == f"http://127.0.0.1:{port}/"
    assert CLIENT_SECRET not in (tmp_path / "server.log").read_text()
