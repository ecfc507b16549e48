"""The emulator over TLS: clients that insist on ``https://{domain}`` work against it unchanged.

The fixture serves the emulator over https on a free loopback port, with a certificate for
127.0.0.1 and localhost from a CA made for the test (the code ``gateway emulator --tls`` uses).
Each client trusts that CA its ordinary way: ``SSL_CERT_FILE`` (httpx) and ``REQUESTS_CA_BUNDLE``
(requests) for auth0-python, ``GATEWAY_AUTH0__CA_FILE`` for the gateway, ``NODE_EXTRA_CA_CERTS``
for node-auth0 (``tests/node``, installed by ``make test``).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from auth0.authentication import GetToken
from auth0.authentication.token_verifier import AsymmetricSignatureVerifier, TokenVerifier
from auth0.management import ManagementClient
from pydantic import SecretStr

from app.auth.cipher import generate_key
from app.main import create_app
from app.tenant.commands import run_provision
from app.tenant.config import ProvisionConfig, ProvisionCredentials, tenant_spec
from app.tenant.doctor import diagnose
from emulator import server as emulator_server
from emulator.app import create_emulator_app
from emulator.state import Tenant
from emulator.tls import certificate_names, issue_server_tls
from settings import Environment, Settings
from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import ADMIN, API, CLIENT_ID, CLIENT_SECRET, REALM, VIEWER
from tests.emulator.management_helpers import management_tenant
from tests.servers import UvicornThread, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"
SCOPE = "openid profile email offline_access"


@dataclass(frozen=True)
class TlsEmulator:
    """An emulator served over https, the CA file that issued its certificate, its domain."""

    running: RunningEmulator
    ca_file: Path

    @property
    def domain(self) -> str:
        """``127.0.0.1:PORT``: what SDKs put after ``https://``."""
        return f"127.0.0.1:{self.running.server.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the emulator's CA only."""
        return ssl.create_default_context(cafile=self.ca_file)


@pytest.fixture
def tls_emulator(tmp_path: Path) -> Iterator[TlsEmulator]:
    """The demo tenant (Management rate limit off) over https on a free loopback port."""
    port = free_port()
    tenant = Tenant.from_dict(management_tenant(), f"https://127.0.0.1:{port}/")
    server_tls = issue_server_tls(tmp_path)
    ca_file = tmp_path / "emulator-ca.pem"
    server_tls.write_ca(ca_file)
    server = UvicornThread(
        create_emulator_app(tenant),
        port=port,
        ssl_certfile=str(server_tls.certfile),
        ssl_keyfile=str(server_tls.keyfile),
    ).start()
    running = RunningEmulator(server, tenant)
    running.url = f"https://127.0.0.1:{port}"
    yield TlsEmulator(running, ca_file)
    server.stop()


@pytest.fixture
def python_trusts_the_ca(tls_emulator: TlsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx and requests trust the emulator's CA, for this test only."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_emulator.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_emulator.ca_file))


# --- the emulator itself ---------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_serves_https_with_an_https_issuer(tls_emulator: TlsEmulator, host: str) -> None:
    port = tls_emulator.running.server.port
    with httpx.Client(verify=tls_emulator.ssl_context()) as http:
        response = http.get(f"https://{host}:{port}/.well-known/openid-configuration")
    assert response.status_code == 200
    discovery = response.json()
    assert discovery["issuer"] == f"https://127.0.0.1:{port}/"
    assert discovery["jwks_uri"] == f"https://127.0.0.1:{port}/.well-known/jwks.json"


def test_its_certificate_is_trusted_through_the_ca_only(
    tls_emulator: TlsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with httpx.Client() as http, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
        http.get(f"{tls_emulator.running.url}/.well-known/jwks.json")


def test_certificate_names() -> None:
    assert certificate_names("127.0.0.1") == ["127.0.0.1", "localhost", "::1"]
    assert certificate_names("0.0.0.0", "https://emulator:8001/") == [  # noqa: S104
        "127.0.0.1",
        "localhost",
        "::1",
        "emulator",
    ]
    assert certificate_names("10.0.0.5")[-1] == "10.0.0.5"


def test_the_key_file_is_for_its_owner_only(tmp_path: Path) -> None:
    server_tls = issue_server_tls(tmp_path)
    assert server_tls.keyfile.stat().st_mode & 0o777 == 0o600
    assert server_tls.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_the_command_serves_https_and_writes_the_ca(tmp_path: Path) -> None:
    port = free_port()
    ca_file = tmp_path / "ca.pem"
    command = [
        sys.executable,
        "-c",
        "from app.cli import main; main()",
        "emulator",
        "--port",
        str(port),
        "--tls",
        "--tls-ca-out",
        str(ca_file),
    ]
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(port, timeout_s=30)
        context = ssl.create_default_context(cafile=ca_file)
        with httpx.Client(verify=context) as http:
            discovery = http.get(f"https://127.0.0.1:{port}/.well-known/openid-configuration")
        assert discovery.json()["issuer"] == f"https://127.0.0.1:{port}/"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert f"emulator CA certificate (PEM): {ca_file}" in stderr.decode()


def test_the_command_wants_tls_for_a_ca_file(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            sys.executable,
            "-c",
            "from app.cli import main; main()",
            "emulator",
            "--tls-ca-out",
            str(tmp_path / "ca.pem"),
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "needs --tls" in result.stderr.decode()
    assert not (tmp_path / "ca.pem").exists()


def test_python_m_emulator_server_takes_the_tls_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, object]] = []

    def fake_run(*_args: object, **options: object) -> None:
        calls.append(options)

    monkeypatch.setattr(emulator_server, "run", fake_run)
    emulator_server.main(["--tls", "--tls-ca-out", str(tmp_path / "ca.pem")])
    emulator_server.main([])
    assert [(call["tls"], call["tls_ca_out"]) for call in calls] == [
        (True, tmp_path / "ca.pem"),
        (False, None),
    ]
    with pytest.raises(SystemExit) as exited:
        emulator_server.main(["--tls-ca-out", str(tmp_path / "ca.pem")])
    assert exited.value.code == 2


def test_run_wants_tls_for_a_ca_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tls_ca_out needs tls"):
        emulator_server.run("127.0.0.1", free_port(), None, None, tls_ca_out=tmp_path / "ca.pem")


# --- auth0-python -----------------------------------------------------------------------------


@pytest.mark.usefixtures("python_trusts_the_ca")
def test_management_client_works_unchanged(tls_emulator: TlsEmulator) -> None:
    # its token provider posts to https://{domain}/oauth/token with a client of its own
    with httpx.Client(timeout=10) as http:
        sdk = ManagementClient(
            domain=tls_emulator.domain,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            httpx_client=http,
        )
        created = sdk.users.create(
            connection=REALM, email="tls.user@venues.local", password="Tls-Passw0rd!"
        )
        assert created.user_id is not None
        fetched = sdk.users.get(created.user_id)
        assert fetched.email == "tls.user@venues.local"
        listed = [user.email for user in sdk.users.list(q='email:"tls.user@venues.local"')]
        assert listed == ["tls.user@venues.local"]
        sdk.users.delete(created.user_id)
    assert created.user_id not in tls_emulator.running.tenant.users


@pytest.mark.usefixtures("python_trusts_the_ca")
def test_get_token_and_the_id_token_verifier_work_unchanged(tls_emulator: TlsEmulator) -> None:
    domain = tls_emulator.domain
    tokens = GetToken(domain, CLIENT_ID, client_secret=CLIENT_SECRET)  # https, the default
    login = tokens.login(ADMIN[0], ADMIN[1], realm=REALM, audience=API, scope=SCOPE)
    access = jwt.decode(login["access_token"], options={"verify_signature": False})
    assert access["iss"] == f"https://{domain}/"
    verifier = TokenVerifier(
        signature_verifier=AsymmetricSignatureVerifier(f"https://{domain}/.well-known/jwks.json"),
        issuer=f"https://{domain}/",
        audience=CLIENT_ID,
    )
    claims = verifier.verify(login["id_token"])
    assert claims["sub"] == "auth0|demo-admin"
    refreshed = tokens.refresh_token(login["refresh_token"])
    assert refreshed["access_token"] != login["access_token"]


# --- the gateway ------------------------------------------------------------------------------


def tls_gateway_settings(tls: TlsEmulator, tmp_path: Path, **auth0: Any) -> Settings:
    """Local settings against the TLS emulator (``auth0`` overrides its section)."""
    return Settings(
        env=Environment.LOCAL,
        auth0={"domain": tls.running.url, "timeout_s": 2.0, **auth0},
        cache={"url": "memory://"},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'venues.db'}"},
        session={"keys": [generate_key()]},
    )


@pytest.fixture
async def tls_gateway(
    tls_emulator: TlsEmulator, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway (in-process ASGI) against the TLS emulator, trusting its CA file."""
    settings = tls_gateway_settings(tls_emulator, tmp_path, ca_file=str(tls_emulator.ca_file))
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://gateway"
        ) as client,
    ):
        yield client


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def test_the_gateway_flow_over_tls(
    tls_gateway: httpx.AsyncClient, tls_emulator: TlsEmulator
) -> None:
    login = await tls_gateway.post(
        "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    me = await tls_gateway.get("/auth/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "auth0|demo-viewer"
    refreshed = await tls_gateway.post("/auth/refresh", headers=bearer(token))
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()["access_token"]
    assert jwt.decode(new, options={"verify_signature": False})["iss"] == (
        f"{tls_emulator.running.url}/"
    )
    assert (await tls_gateway.get("/auth/me", headers=bearer(new))).status_code == 200
    assert (await tls_gateway.post("/auth/logout", headers=bearer(new))).status_code == 204
    assert (await tls_gateway.get("/auth/me", headers=bearer(new))).status_code == 401
    tenant = tls_emulator.running.tenant
    assert not any(tenant.is_live(t) for t in tenant.refresh_tokens.values())


async def test_the_gateway_refuses_the_emulator_without_the_ca_file(
    tls_emulator: TlsEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    app = create_app(tls_gateway_settings(tls_emulator, tmp_path))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://gateway"
        ) as client,
    ):
        login = await client.post(
            "/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]}
        )
    assert login.status_code == 503
    assert login.json()["error"] == "upstream_unavailable"
    assert tls_emulator.running.tenant.refresh_tokens == {}


async def test_doctor_and_provision_trust_the_ca_file(
    tls_emulator: TlsEmulator, tmp_path: Path
) -> None:
    settings = tls_gateway_settings(tls_emulator, tmp_path, ca_file=str(tls_emulator.ca_file))
    checks = {check.name: check for check in await diagnose(settings)}
    assert checks["client credentials"].status == "ok", checks["client credentials"]
    config = ProvisionConfig(auth0=settings.auth0)
    credentials = ProvisionCredentials(client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET))
    planned, outcome = await run_provision(config, tenant_spec(config), credentials, dry_run=True)
    assert outcome is None
    assert planned is not None


# --- node-auth0 -------------------------------------------------------------------------------


def run_node_login(tls: TlsEmulator, *, trust: bool, domain: str | None = None) -> dict[str, Any]:
    """``tests/node/login.mjs`` (node-auth0's password grant) against the emulator at ``domain``
    (default ``tls.domain``), trusting its CA when ``trust``."""
    node = shutil.which("node")
    assert node, "node is missing: `make test` installs it (Debian's nodejs)"
    assert (NODE_DIR / "node_modules" / "auth0").is_dir(), (
        "tests/node has no node_modules: run `make node-packages` (npm ci --prefix tests/node)"
    )
    env = {key: value for key, value in os.environ.items() if key != "NODE_EXTRA_CA_CERTS"}
    if trust:
        env["NODE_EXTRA_CA_CERTS"] = str(tls.ca_file)
    options = {
        "domain": domain or tls.domain,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "username": ADMIN[0],
        "password": ADMIN[1],
        "realm": REALM,
        "audience": API,
    }
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [node, "login.mjs", json.dumps(options)],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    lines = result.stdout.decode().strip().splitlines()
    assert lines, result.stderr.decode()
    output: dict[str, Any] = json.loads(lines[-1])
    assert (result.returncode == 0) == output["ok"], result.stderr.decode()
    return output


def test_node_auth0_logs_in_and_checks_the_id_token(tls_emulator: TlsEmulator) -> None:
    output = run_node_login(tls_emulator, trust=True)
    assert output["ok"] is True, output
    issuer = f"https://{tls_emulator.domain}/"
    assert output["id_token_claims"]["iss"] == issuer
    assert output["id_token_claims"]["aud"] == CLIENT_ID
    assert output["id_token_claims"]["sub"] == "auth0|demo-admin"
    assert output["access_token_claims"]["iss"] == issuer
    assert output["scope"].split()[0] == "openid"


def test_node_auth0_refuses_the_emulator_without_the_ca(tls_emulator: TlsEmulator) -> None:
    output = run_node_login(tls_emulator, trust=False)
    assert output["ok"] is False
    # node's names for a certificate whose issuer it does not know
    assert output["cause"] in {
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
        "SELF_SIGNED_CERT_IN_CHAIN",
    }, output


def test_node_auth0_checks_the_id_token_issuer(tls_emulator: TlsEmulator) -> None:
    # the certificate covers localhost too, but the tokens' issuer is https://127.0.0.1:PORT/
    localhost = f"localhost:{tls_emulator.running.server.port}"
    output = run_node_login(tls_emulator, trust=True, domain=localhost)
    assert output["ok"] is False
    assert output["message"].startswith("Issuer (iss) claim mismatch in the ID token"), output
