"""Fixtures of the Management API tests: a fresh tenant per test, or one shared per module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import RunningEmulator
from tests.emulator.management_helpers import (
    Factory,
    admin_token,
    management_client,
    management_tenant,
    shared_emulator,
)


@pytest.fixture
def running(emulator_factory: Factory) -> RunningEmulator:
    """A fresh demo tenant, Management rate limit off."""
    return emulator_factory(management_tenant())


@pytest.fixture
def admin(running: RunningEmulator) -> str:
    """A token with every Management scope for ``running``."""
    return admin_token(running)


@pytest.fixture
async def api(running: RunningEmulator, admin: str) -> AsyncIterator[httpx.AsyncClient]:
    """Every Management scope on a fresh tenant, which the test may change."""
    async with management_client(running, admin) as client:
        yield client


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[RunningEmulator, str]]:
    """One tenant for this module's tests that leave it unchanged."""
    with shared_emulator() as pair:
        yield pair


@pytest.fixture
async def shared_api(
    shared: tuple[RunningEmulator, str],
) -> AsyncIterator[httpx.AsyncClient]:
    """Every Management scope on the module's shared tenant (do not change it)."""
    async with management_client(*shared) as client:
        yield client
