"""The /__emulator/ control routes: stats, faults, clock, key rotation, refresh-token listing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from app.cli import cli
from emulator import server as emulator_server
from emulator.app import create_emulator_app
from emulator.middleware import is_loopback
from emulator.state import Tenant
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


async def _published_kids(http: httpx.AsyncClient) -> list[str]:
    return [k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]]


class TestKeys:
    async def test_the_next_key_is_published_before_it_signs(
        self, emulator: RunningEmulator
    ) -> None:
        async with client_for(emulator) as http:
            token = (await login(http))["access_token"]
            kids = await _published_kids(http)
        current = jwt.get_unverified_header(token)["kid"]
        assert kids == [current, emulator.tenant.next_key.kid]
        assert len(set(kids)) == 2

    async def test_rotation_promotes_the_published_next_key(
        self, emulator: RunningEmulator
    ) -> None:
        async with client_for(emulator) as http:
            old_token = (await login(http))["access_token"]
            old_kid = jwt.get_unverified_header(old_token)["kid"]
            announced = (await _published_kids(http))[1]
            rotated = (await http.post("/__emulator/keys/rotate")).json()
            new_token = (await login(http))["access_token"]
            kids = await _published_kids(http)
            old_still_good = await http.get("/userinfo", headers=_bearer(old_token))
        assert rotated["kid"] == announced != old_kid
        assert rotated["previous_kid"] == old_kid
        assert rotated["next_kid"] not in {announced, old_kid}
        assert jwt.get_unverified_header(new_token)["kid"] == announced
        # current, a new next key, and the previous one until it is revoked
        assert kids == [announced, rotated["next_kid"], old_kid]
        assert old_still_good.status_code == 200

    async def test_a_second_rotation_drops_the_oldest_key(self, emulator: RunningEmulator) -> None:
        async with client_for(emulator) as http:
            first = jwt.get_unverified_header((await login(http))["access_token"])["kid"]
            second = (await http.post("/__emulator/keys/rotate")).json()["kid"]
            third = (await http.post("/__emulator/keys/rotate")).json()
            kids = await _published_kids(http)
        assert third["previous_kid"] == second
        assert first not in kids
        assert len(kids) == 3

    async def test_revoking_the_previous_key_ends_its_tokens(
        self, emulator: RunningEmulator
    ) -> None:
        async with client_for(emulator) as http:
            old_token = (await login(http))["access_token"]
            old_kid = jwt.get_unverified_header(old_token)["kid"]
            rotated = (await http.post("/__emulator/keys/rotate")).json()
            revoked = await http.post("/__emulator/keys/revoke-previous")
            kids = await _published_kids(http)
            old_refused = await http.get("/userinfo", headers=_bearer(old_token))
            again = await http.post("/__emulator/keys/revoke-previous")
        assert revoked.status_code == 200
        assert revoked.json() == {**rotated, "previous_kid": None}
        assert kids == [rotated["kid"], rotated["next_kid"]]
        assert old_kid not in kids
        assert old_refused.status_code == 401
        assert again.status_code == 404
        assert again.json()["error"] == "not_found"

    async def test_replacing_the_current_key_signs_with_an_unpublished_key(
        self, emulator: RunningEmulator
    ) -> None:
        async with client_for(emulator) as http:
            old_token = (await login(http))["access_token"]
            old_kid = jwt.get_unverified_header(old_token)["kid"]
            before = await _published_kids(http)
            replaced = (await http.post("/__emulator/keys/replace-current")).json()
            new_token = (await login(http))["access_token"]
            after = await _published_kids(http)
        assert replaced["kid"] not in before
        assert jwt.get_unverified_header(new_token)["kid"] == replaced["kid"]
        # the next key stays as announced; the old current key is now the previous one
        assert replaced["next_kid"] == before[1]
        assert replaced["previous_kid"] == old_kid
        assert after == [replaced["kid"], before[1], old_kid]

    def test_assigning_the_key_set(self) -> None:
        tenant = Tenant("http://emulator.test/")
        first, second = tenant.current_key, tenant.next_key
        tenant.keys = [second]
        assert tenant.current_key is second
        assert tenant.next_key.kid not in {first.kid, second.kid}
        assert tenant.previous_key is None
        third = tenant.next_key
        tenant.keys = [first, second, third]
        assert [k.kid for k in tenant.keys] == [first.kid, second.kid, third.kid]
        assert tenant.previous_key is third


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


CONTROL_CALLS = [
    ("GET", "/__emulator/stats"),
    ("POST", "/__emulator/stats/reset"),
    ("GET", "/__emulator/faults"),
    ("POST", "/__emulator/faults"),
    ("DELETE", "/__emulator/faults"),
    ("GET", "/__emulator/clock"),
    ("POST", "/__emulator/clock"),
    ("POST", "/__emulator/keys/rotate"),
    ("POST", "/__emulator/keys/replace-current"),
    ("POST", "/__emulator/keys/revoke-previous"),
    ("GET", "/__emulator/refresh-tokens"),
    ("DELETE", "/__emulator/blocks"),
    ("GET", "/__emulator/no-such-control"),
    ("GET", "/__emulator"),
    ("GET", "/__emulator/stats/"),
    ("GET", "/%5F%5Femulator/stats"),
]
CONTROL_BODIES: dict[str, Any] = {
    "/__emulator/faults": {"path": "/oauth/token", "status": 503},
    "/__emulator/clock": {"offset_s": 3600},
}


def _asgi_client(
    client: tuple[str, int], *, allow_remote_control: bool = False
) -> tuple[httpx.AsyncClient, Tenant]:
    """The demo tenant's app, called in process as if from ``client``."""
    tenant = Tenant.from_file(None, "http://emulator.test/")
    app = create_emulator_app(tenant, allow_remote_control=allow_remote_control)
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://emulator.test"), tenant


class TestRemoteControl:
    @pytest.mark.parametrize(
        "host", ["10.0.0.5", "192.0.2.7", "::ffff:10.0.0.5", "fe80::1", "203.0.113.9", "testclient"]
    )
    async def test_other_clients_are_403_and_change_nothing(self, host: str) -> None:
        http, tenant = _asgi_client((host, 1234))
        kids = [key.kid for key in tenant.keys]
        async with http:
            for method, path in CONTROL_CALLS:
                response = await http.request(method, path, json=CONTROL_BODIES.get(path))
                assert response.status_code == 403, (method, path, response.text)
                body = response.json()
                assert body["error"] == "access_denied"
                assert "--allow-remote-control" in body["error_description"]
            # the tenant's own API still answers them
            assert (await http.get("/.well-known/jwks.json")).status_code == 200
        assert (tenant.faults, tenant.clock_offset_s) == ([], 0)
        assert [key.kid for key in tenant.keys] == kids

    @pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
    async def test_loopback_clients_are_served(self, host: str) -> None:
        http, tenant = _asgi_client((host, 1234))
        async with http:
            moved = await http.post("/__emulator/clock", json={"offset_s": 60})
            stats = await http.get("/__emulator/stats")
        assert (moved.status_code, stats.status_code) == (200, 200)
        assert tenant.clock_offset_s == 60

    async def test_the_flag_lets_everyone_in(self) -> None:
        http, tenant = _asgi_client(("10.0.0.5", 1234), allow_remote_control=True)
        async with http:
            moved = await http.post("/__emulator/clock", json={"offset_s": 60})
        assert moved.status_code == 200
        assert tenant.clock_offset_s == 60

    def test_an_unknown_client_is_not_loopback(self) -> None:
        assert not is_loopback(None)
        assert not is_loopback(())
        assert not is_loopback(("localhost", 1))
        assert is_loopback(["::1", 1])

    def test_the_commands_pass_the_flag(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[bool] = []

        def fake_run(
            *_args: object, allow_remote_control: bool = False, **_options: object
        ) -> None:
            calls.append(allow_remote_control)

        monkeypatch.setattr(emulator_server, "run", fake_run)
        emulator_server.main([])
        emulator_server.main(["--allow-remote-control"])
        runner = CliRunner()
        assert runner.invoke(cli, ["emulator"]).exit_code == 0
        assert runner.invoke(cli, ["emulator", "--allow-remote-control"]).exit_code == 0
        assert calls == [False, True, False, True]
