"""Venue fixtures: a gateway on the test's database (SQLite and PostgreSQL, from
:mod:`tests.db.fixtures`), with the demo users' tokens at hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningEmulator, start_emulator
from tests.e2e.conftest import (  # noqa: F401 - the end-to-end fixtures, for the route tests
    ADMIN,
    bearer,
    gateway_factory,
    login,
    no_token_leaks,
    recorder,
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    """The demo tenant, one per module: venue tests never change the tenant itself."""
    running = start_emulator()
    yield running
    running.server.stop()


class VenueClient:
    """A gateway on the test's database, with the demo admin's and viewer's tokens at hand."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self._headers: dict[tuple[str, str], dict[str, str]] = {}

    async def headers(self, user: tuple[str, str] | None) -> dict[str, str]:
        """``Authorization`` for ``user`` (logged in once through the gateway); none for None."""
        if user is None:
            return {}
        if user not in self._headers:
            self._headers[user] = bearer(await login(self.http, user))
        return self._headers[user]

    async def request(
        self, method: str, url: str, *, user: tuple[str, str] | None = ADMIN, **kwargs: Any
    ) -> httpx.Response:
        """Send a request as ``user`` (the admin by default, None for anonymous)."""
        headers = {**(await self.headers(user)), **kwargs.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def create(self, **fields: Any) -> dict[str, Any]:
        """Create a venue as the admin (Tempodrom, Berlin unless ``fields`` say otherwise)."""
        body = {**TEMPODROM, **fields}
        response = await self.request("POST", "/venues", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


def fullwidth(text: str) -> str:
    """``text`` in fullwidth forms (U+FF01-U+FF5E), which NFKC maps back to ASCII."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


TEMPODROM: dict[str, Any] = {
    "name": "Tempodrom",
    "address": "Möckernstraße 10",
    "city": "Berlin",
    "country": "DE",
    "timezone": "Europe/Berlin",
    "capacity": 3500,
}


@pytest.fixture
async def venues(gateway_factory: Callable[..., Any], database_url: str) -> VenueClient:  # noqa: F811
    """A gateway (emulator, memcached) whose venue database is the test's backend."""
    client, _ = await gateway_factory(database={"url": database_url})
    assert isinstance(client, httpx.AsyncClient)
    return VenueClient(client)
