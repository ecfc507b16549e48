"""Settings: per-environment defaults, refusals outside local, list parsing, secrets files."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from settings import Environment, Settings, load_settings

DEPLOYED: dict[str, Any] = {
    "auth0": {
        "domain": "acme-dev.auth0.com",
        "client_id": "cid",
        "client_secret": "hunter2-value",
        "audience": "https://api.acme.example",
    },
    "session": {"keys": ["k" * 43 + "="]},
    "cache": {"url": "memcached://cache:11211"},
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "GATEWAY_ENV",
        "GATEWAY_SECRETS_DIR",
        "GATEWAY_AUTH0__CLIENT_SECRET",
        "GATEWAY_AUTH0__CA_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_local_points_at_the_emulator() -> None:
    settings = Settings(env=Environment.LOCAL)
    assert settings.auth0.base_url == "http://127.0.0.1:8001"
    assert settings.auth0.issuer == "http://127.0.0.1:8001/"
    assert settings.auth0.management_audience == "http://127.0.0.1:8001/api/v2/"
    assert settings.auth0.client_id == "local-gateway"
    assert settings.cache_namespace == "vg-local"
    assert settings.docs_enabled is True


def test_company_names_the_tenant_per_environment() -> None:
    data: dict[str, Any] = {**DEPLOYED, "auth0": {**DEPLOYED["auth0"], "domain": None}}
    settings = Settings(env=Environment.INT, company="acme", **data)
    assert settings.auth0.base_url == "https://acme-int.auth0.com"
    assert settings.cache_namespace == "vg-int"


@pytest.mark.parametrize("env", [Environment.DEV, Environment.INT, Environment.PROD])
def test_deployed_environments_refuse_missing_settings(env: Environment) -> None:
    with pytest.raises(ValidationError, match="GATEWAY_AUTH0__CLIENT_SECRET"):
        Settings(env=env, auth0={"domain": "acme.auth0.com"})


def test_deployed_environments_refuse_a_per_process_cache() -> None:
    data: dict[str, Any] = {**DEPLOYED, "cache": {"url": "memory://"}}
    with pytest.raises(ValidationError, match="GATEWAY_CACHE__URL"):
        Settings(env=Environment.DEV, **data)


def test_plain_http_is_refused_outside_local() -> None:
    data: dict[str, Any] = {
        **DEPLOYED,
        "auth0": {**DEPLOYED["auth0"], "domain": "http://acme.example"},
    }
    with pytest.raises(ValidationError, match="plain-http"):
        Settings(env=Environment.DEV, **data)


def test_prod_refuses_the_emulator() -> None:
    data: dict[str, Any] = {
        **DEPLOYED,
        "auth0": {**DEPLOYED["auth0"], "domain": "https://127.0.0.1:8001"},
    }
    with pytest.raises(ValidationError, match="loopback"):
        Settings(
            env=Environment.PROD,
            database={"url": "postgresql+asyncpg://db.example/venues"},
            **data,
        )


def test_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1/32")
    monkeypatch.setenv("GATEWAY_SESSION__KEYS", '["a", "b"]')
    settings = load_settings()
    assert [str(net) for net in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.1.1/32"]
    assert [key.get_secret_value() for key in settings.session.keys] == ["a", "b"]


def test_secrets_come_from_files_named_like_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "GATEWAY_AUTH0__CLIENT_SECRET").write_text("from-a-file")
    monkeypatch.setenv("GATEWAY_SECRETS_DIR", str(tmp_path))
    from_file = load_settings().auth0.client_secret
    assert from_file is not None
    assert from_file.get_secret_value() == "from-a-file"
    monkeypatch.setenv("GATEWAY_AUTH0__CLIENT_SECRET", "from-the-environment")
    secret = load_settings().auth0.client_secret
    assert secret is not None
    assert secret.get_secret_value() == "from-the-environment"


def test_secrets_are_not_shown() -> None:
    settings = Settings(env=Environment.DEV, **DEPLOYED)
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


def test_a_ca_file_is_allowed_in_every_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("GATEWAY_AUTH0__CA_FILE", str(ca_file))
    deployed: dict[str, Any] = {
        **DEPLOYED,
        "database": {"url": "postgresql+asyncpg://db.example/venues"},
    }
    for env in Environment:
        settings = load_settings(env=env, **(deployed if env is not Environment.LOCAL else {}))
        assert settings.auth0.ca_file == ca_file
        context = settings.auth0.tls_verify()
        assert isinstance(context, ssl.SSLContext)
        assert len(context.get_ca_certs()) == 1
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname


def test_without_a_ca_file_httpx_keeps_its_own_roots() -> None:
    assert Settings(env=Environment.LOCAL).auth0.tls_verify() is True


def test_a_ca_file_must_exist_and_hold_a_certificate(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ca_file"):
        Settings(env=Environment.LOCAL, auth0={"ca_file": str(tmp_path / "missing.pem")})
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match="no PEM certificate"):
        Settings(env=Environment.LOCAL, auth0={"ca_file": str(not_pem)})


def test_prod_still_refuses_the_emulator_over_tls(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    data: dict[str, Any] = {
        **DEPLOYED,
        "auth0": {**DEPLOYED["auth0"], "domain": "https://127.0.0.1:8001", "ca_file": ca_file},
    }
    assert Settings(env=Environment.INT, **data).auth0.base_url == "https://127.0.0.1:8001"
    with pytest.raises(ValidationError, match="loopback"):
        Settings(
            env=Environment.PROD,
            database={"url": "postgresql+asyncpg://db.example/venues"},
            **data,
        )


class TestCookieMode:
    def test_the_cookie_is_secure_with_the_host_prefix_by_default(self) -> None:
        browser = Settings(env=Environment.LOCAL).browser
        assert (browser.cookie, browser.cookie_secure, browser.same_site) == (
            "__Host-vg_session",
            True,
            "strict",
        )

    def test_an_insecure_cookie_has_no_prefix_and_only_in_local(self) -> None:
        local = Settings(env=Environment.LOCAL, browser={"cookie_secure": False})
        assert local.browser.cookie == "vg_session"
        with pytest.raises(ValidationError, match="COOKIE_SECURE"):
            Settings(env=Environment.DEV, browser={"cookie_secure": False}, **DEPLOYED)

    @pytest.mark.parametrize(
        "browser", [{"same_site": "none"}, {"cookie_name": "a;b"}, {"refresh_margin_s": -1}]
    )
    def test_bad_cookie_settings_are_refused(self, browser: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            Settings(env=Environment.LOCAL, browser=browser)

    def test_refresh_after_expiry_is_a_day_and_at_most_a_week(self) -> None:
        assert Settings(env=Environment.LOCAL).session.refresh_after_expiry_s == 86_400
        Settings(env=Environment.LOCAL, session={"refresh_after_expiry_s": 604_800})
        with pytest.raises(ValidationError):
            Settings(env=Environment.LOCAL, session={"refresh_after_expiry_s": 604_801})


@pytest.mark.parametrize("env", [Environment.DEV, Environment.INT, Environment.PROD])
def test_deployed_environments_refuse_plain_http_cors_origins(env: Environment) -> None:
    """CORS allows credentials, so a rewritable http page must not be an allowed origin."""
    with pytest.raises(ValidationError, match="plain-http CORS origins"):
        Settings(env=env, **{**DEPLOYED, "cors_origins": ["http://app.example.com"]})
    allowed = Settings(
        env=Environment.DEV,
        **{**DEPLOYED, "cors_origins": ["https://App.Example.com", "http://127.0.0.1:5173"]},
    )
    assert allowed.cors_origins == ["https://app.example.com", "http://127.0.0.1:5173"]
