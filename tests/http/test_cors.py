"""CORS for the SPA: exact origins per environment, preflights answered, credentials for those
origins only (cookie mode)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from app.http.cors import _with_vary_origin
from settings import Environment, Settings
from tests.e2e.conftest import bearer, login

Factory = Callable[..., Any]
SPA = "https://spa.venues.example"
PREFLIGHT = {
    "Origin": SPA,
    "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "authorization, content-type, if-match, x-request-id",
}


async def test_preflight_from_an_allowed_origin(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory(cors_origins=[SPA])
    response = await gateway.options(
        "/venues/3f1e6a5c-0000-4000-8000-000000000000", headers=PREFLIGHT
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SPA
    assert "PUT" in response.headers["access-control-allow-methods"]
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type", "if-match", "x-request-id"} <= allowed
    assert response.headers["access-control-allow-credentials"] == "true"
    assert int(response.headers["access-control-max-age"]) > 0


async def test_preflight_from_another_origin_is_refused(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory(cors_origins=[SPA])
    response = await gateway.options(
        "/venues", headers={**PREFLIGHT, "Origin": "https://evil.example"}
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_actual_response_exposes_what_the_spa_reads(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory(cors_origins=[SPA])
    token = await login(gateway)
    response = await gateway.get("/auth/me", headers={**bearer(token), "Origin": SPA})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SPA
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "location", "retry-after", "x-request-id", "www-authenticate"} <= exposed
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_errors_carry_cors_headers_too(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory(cors_origins=[SPA])
    response = await gateway.get("/auth/me", headers={"Origin": SPA})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == SPA


async def test_without_origin_only_vary_is_added(gateway_factory: Factory) -> None:
    """No ``Origin``: no CORS header, but caches learn the answer depends on it."""
    gateway, _ = await gateway_factory(cors_origins=[SPA])
    token = await login(gateway)
    for response in (
        await gateway.get("/auth/me", headers=bearer(token)),
        await gateway.get("/auth/me"),  # an error answer too
    ):
        assert response.headers.get_list("vary") == ["Origin"]
        assert not any(name.startswith("access-control-") for name in response.headers)
    with_origin = await gateway.get("/auth/me", headers={**bearer(token), "Origin": SPA})
    assert with_origin.headers.get_list("vary") == ["Origin"]


def test_vary_origin_joins_an_existing_vary() -> None:
    headers = [(b"content-type", b"application/json"), (b"vary", b"Accept-Encoding")]
    assert _with_vary_origin(headers) == [
        (b"content-type", b"application/json"),
        (b"vary", b"Accept-Encoding, Origin"),
    ]
    assert _with_vary_origin([]) == [(b"vary", b"Origin")]


async def test_no_origins_no_cors(gateway_factory: Factory) -> None:
    gateway, _ = await gateway_factory(env=Environment.LOCAL, cors_origins=[])
    response = await gateway.options("/venues", headers=PREFLIGHT)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


class TestSettings:
    def test_local_defaults_to_the_vite_dev_server(self) -> None:
        settings = Settings(env=Environment.LOCAL)
        assert settings.cors_origins == ["http://localhost:5173", "http://127.0.0.1:5173"]

    def test_an_explicit_empty_list_wins_in_local(self) -> None:
        assert Settings(env=Environment.LOCAL, cors_origins="").cors_origins == []

    def test_deployed_environments_default_to_none(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_SESSION__KEYS", "k" * 44)
        monkeypatch.setenv("GATEWAY_CACHE__URL", "memcached://cache:11211")
        settings = Settings(
            env=Environment.DEV,
            company="acme",
            auth0={"client_id": "c", "client_secret": "s", "audience": "https://api"},
        )
        assert settings.cors_origins == []

    def test_comma_separated_and_trailing_slash(self) -> None:
        settings = Settings(cors_origins="https://a.example/, http://localhost:3000")
        assert settings.cors_origins == ["https://a.example", "http://localhost:3000"]

    @pytest.mark.parametrize(
        "origin", ["*", "spa.example", "https://spa.example/app", "ftp://spa.example"]
    )
    def test_anything_but_an_exact_origin_is_refused(self, origin: str) -> None:
        with pytest.raises(ValidationError, match="CORS origin"):
            Settings(cors_origins=[origin])
