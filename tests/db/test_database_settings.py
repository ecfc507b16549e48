"""``GATEWAY_DATABASE__*``: the URL's driver, and what each environment accepts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings import DatabaseSettings, Environment, Settings


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u:p@db/venues", "postgresql+asyncpg://u:p@db/venues"),
        ("postgresql://u:p@db/venues", "postgresql+asyncpg://u:p@db/venues"),
        ("postgresql+asyncpg://u:p@db/venues", "postgresql+asyncpg://u:p@db/venues"),
        ("sqlite:///./v.db", "sqlite+aiosqlite:///./v.db"),
    ],
)
def test_the_async_driver_is_filled_in(given: str, used: str) -> None:
    assert DatabaseSettings(url=given).url == used


@pytest.mark.parametrize(
    "url", ["mysql://db/venues", "db/venues", "sqlite+aiosqlite:///:memory:", "sqlite://"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        DatabaseSettings(url=url)


def _deployed(env: Environment, database_url: str | None = None) -> Settings:
    values: dict[str, object] = {
        "env": env,
        "auth0": {
            "domain": "acme-prod.auth0.com",
            "client_id": "id",
            "client_secret": "secret",
            "audience": "https://api.venues.example",
        },
        "session": {"keys": "k"},
        "cache": {"url": "memcached://cache:11211"},
    }
    if database_url:
        values["database"] = {"url": database_url}
    return Settings.model_validate(values)


def test_prod_refuses_sqlite() -> None:
    with pytest.raises(ValidationError, match="prod refuses an SQLite database"):
        _deployed(Environment.PROD)
    assert _deployed(Environment.PROD, "postgresql://u:p@db/venues").database.url.startswith(
        "postgresql+asyncpg://"
    )


def test_dev_may_use_sqlite() -> None:
    assert _deployed(Environment.DEV).database.is_sqlite
