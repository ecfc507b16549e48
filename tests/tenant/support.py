"""A bare tenant (only a bootstrap management client) and helpers of the tenant tests."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from app.tenant.config import ProvisionConfig, ProvisionCredentials, tenant_spec
from app.tenant.spec import TenantSpec
from emulator.state import MANAGEMENT_SCOPES
from settings.model import Environment, Settings
from tests.conftest import RunningEmulator

BOOTSTRAP_ID = "bootstrap-m2m"
BOOTSTRAP_SECRET = "bootstrap-secret-0123456789"
COMPANY = "acme"
AUDIENCE = "https://api.acme.test"
CONNECTION = "Username-Password-Authentication"
PROBE = ("probe@example.com", "Pr0be-Passw0rd!")


def bare_tenant(**limits: Any) -> dict[str, Any]:
    """No default directory, no API, no gateway client: one bootstrap M2M client and its grant.

    The Management API rate limit is off unless ``limits`` turn it on.
    """
    return {
        "settings": {"friendly_name": "bare tenant"},
        "limits": {"management_enabled": False, **limits},
        "connections": [{"name": CONNECTION, "strategy": "auth0", "password_policy": "fair"}],
        "clients": [
            {
                "client_id": BOOTSTRAP_ID,
                "client_secret": BOOTSTRAP_SECRET,
                "name": "bootstrap",
                "app_type": "non_interactive",
                "grant_types": ["client_credentials"],
            }
        ],
        "client_grants": [
            {"client_id": BOOTSTRAP_ID, "audience": "{issuer}api/v2/", "scope": MANAGEMENT_SCOPES}
        ],
    }


def config(running: RunningEmulator, **overrides: Any) -> ProvisionConfig:
    """What ``gateway provision --env local`` would read for the emulator's tenant."""
    data: dict[str, Any] = {
        "env": Environment.LOCAL,
        "company": COMPANY,
        "auth0": {"domain": running.url, "audience": AUDIENCE, "timeout_s": 5},
    }
    data.update(overrides)
    return ProvisionConfig(**data)


def spec(running: RunningEmulator) -> TenantSpec:
    """The desired state of the emulator's tenant."""
    return tenant_spec(config(running))


def bootstrap() -> ProvisionCredentials:
    """The bootstrap client's credentials."""
    return ProvisionCredentials(client_id=BOOTSTRAP_ID, client_secret=SecretStr(BOOTSTRAP_SECRET))


def gateway_settings(running: RunningEmulator, client_id: str, client_secret: str) -> Settings:
    """The gateway's settings once provisioned (what ``gateway doctor`` reads)."""
    return Settings(
        env=Environment.LOCAL,
        company=COMPANY,
        auth0={
            "domain": running.url,
            "client_id": client_id,
            "client_secret": client_secret,
            "audience": AUDIENCE,
        },
    )


async def bootstrap_api(running: RunningEmulator) -> httpx.AsyncClient:
    """An HTTP client on ``/api/v2`` with the bootstrap client's token (close it after use)."""
    async with httpx.AsyncClient(base_url=running.url) as http:
        response = await http.post(
            "/oauth/token",
            json={
                "grant_type": "client_credentials",
                "client_id": BOOTSTRAP_ID,
                "client_secret": BOOTSTRAP_SECRET,
                "audience": f"{running.issuer}api/v2/",
            },
        )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    return httpx.AsyncClient(
        base_url=f"{running.url}/api/v2", headers={"Authorization": f"Bearer {token}"}
    )


async def add_probe_user(running: RunningEmulator) -> None:
    """A test user in the connection, created through the Management API."""
    api = await bootstrap_api(running)
    async with api:
        response = await api.post(
            "/users",
            json={"connection": CONNECTION, "email": PROBE[0], "password": PROBE[1]},
        )
    assert response.status_code == 201, response.text
