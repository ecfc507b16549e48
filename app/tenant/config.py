"""What ``gateway provision`` reads: the tenant to provision and the credentials to do it with.

The gateway's own settings cannot be loaded before the first provisioning (its client id and
secret do not exist yet, and outside ``local`` they are required), so this is a lenient view
of the same ``GATEWAY_*`` variables (and ``GATEWAY_SECRETS_DIR``) plus the provisioning
credentials:

- ``GATEWAY_PROVISION__TOKEN``: a Management API token (e.g. from the dashboard's API
  Explorer), or
- ``GATEWAY_PROVISION__CLIENT_ID`` / ``__CLIENT_SECRET``: a bootstrap machine-to-machine
  client authorized for the Management API with ``read:``/``create:``/``update:`` on
  ``clients``, ``client_grants``, ``resource_servers`` and ``tenant_settings``.

Command-line flags win over variables. With neither, the gateway's own client
(``GATEWAY_AUTH0__CLIENT_ID``/``__CLIENT_SECRET``, in ``local`` the emulator's demo client) is
used: once provisioned it may read the configuration (enough for ``--dry-run``), not change it.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.tenant.spec import TenantSpec
from settings.model import (
    LOCAL_AUDIENCE,
    LOCAL_CLIENT_ID,
    LOCAL_CLIENT_SECRET,
    LOCAL_EMULATOR_URL,
    Auth0Settings,
    Environment,
    is_loopback,
)

#: The company name of the local (emulator) tenant, whose demo client is ``venues-local``.
LOCAL_COMPANY = "venues"


class ConfigError(ValueError):
    """A missing or inconsistent input; the message says which variable or flag to set."""


class ProvisionCredentials(BaseModel):
    """How provisioning authenticates to the Management API."""

    token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None


class ProvisionConfig(BaseSettings):
    """The ``GATEWAY_*`` variables provisioning reads; nothing is required here."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    env: Environment = Environment.LOCAL
    company: str | None = None
    auth0: Auth0Settings = Field(default_factory=Auth0Settings)
    provision: ProvisionCredentials = Field(default_factory=ProvisionCredentials)


def load_config(**overrides: Any) -> ProvisionConfig:
    """Read the variables (and ``GATEWAY_SECRETS_DIR``), with ``overrides`` on top."""
    secrets_dir = os.environ.get("GATEWAY_SECRETS_DIR")
    if secrets_dir:
        return ProvisionConfig(_secrets_dir=secrets_dir, **overrides)
    return ProvisionConfig(**overrides)


def tenant_spec(
    config: ProvisionConfig,
    *,
    company: str | None = None,
    domain: str | None = None,
    audience: str | None = None,
) -> TenantSpec:
    """The desired state for ``config.env``; flags override variables."""
    env = config.env
    local = env is Environment.LOCAL
    company = company or config.company or (LOCAL_COMPANY if local else None)
    if not company:
        raise ConfigError("set GATEWAY_COMPANY or --company (the client is <company>-<env>)")
    auth0 = config.auth0.model_copy()
    auth0.domain = domain or auth0.domain or (LOCAL_EMULATOR_URL if local else None)
    auth0.domain = auth0.domain or f"{company}-{env.value}.auth0.com"
    audience = audience or auth0.audience or (LOCAL_AUDIENCE if local else None)
    if not audience:
        raise ConfigError("set GATEWAY_AUTH0__AUDIENCE or --audience (the API identifier)")
    parts = urlsplit(auth0.base_url)
    if not local and parts.scheme != "https":
        raise ConfigError(f"{env.value} refuses a plain-http Auth0 domain ({auth0.domain})")
    if env is Environment.PROD and is_loopback(parts.hostname or ""):
        raise ConfigError("prod refuses an Auth0 domain on a loopback address (the emulator)")
    return TenantSpec(
        company=company,
        env=env.value,
        base_url=auth0.base_url,
        audience=audience,
        connection=auth0.connection,
    )


def auth0_settings(config: ProvisionConfig, spec: TenantSpec) -> Auth0Settings:
    """The Authentication API settings for the spec's tenant (for a ``client_credentials``)."""
    auth0 = config.auth0.model_copy()
    auth0.domain = spec.base_url
    auth0.audience = spec.audience
    return auth0


def credentials(
    config: ProvisionConfig,
    *,
    token: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> ProvisionCredentials:
    """The credentials to use: flags, then ``GATEWAY_PROVISION__*``, then the gateway's own."""
    if token:
        return ProvisionCredentials(token=SecretStr(token))
    if client_id or client_secret:
        if not (client_id and client_secret):
            raise ConfigError("--client-id and --client-secret go together")
        return ProvisionCredentials(client_id=client_id, client_secret=SecretStr(client_secret))
    given = config.provision
    if given.token is not None:
        return ProvisionCredentials(token=given.token)
    if given.client_id and given.client_secret is not None:
        return ProvisionCredentials(client_id=given.client_id, client_secret=given.client_secret)
    if config.auth0.client_id and config.auth0.client_secret is not None:
        return ProvisionCredentials(
            client_id=config.auth0.client_id, client_secret=config.auth0.client_secret
        )
    if config.env is Environment.LOCAL:
        # the emulator's demo client, as the gateway itself uses in local
        return ProvisionCredentials(
            client_id=LOCAL_CLIENT_ID, client_secret=SecretStr(LOCAL_CLIENT_SECRET)
        )
    raise ConfigError(
        "no Management API credentials: pass --token (or GATEWAY_PROVISION__TOKEN), or "
        "--client-id/--client-secret (or GATEWAY_PROVISION__CLIENT_ID/__CLIENT_SECRET) of a "
        "client authorized for the Management API"
    )
