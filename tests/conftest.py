"""Fixtures shared by every test: a real memcached process and the emulator as a real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulator.app import create_emulator_app
from emulator.state import Tenant
from tests.servers import MemcachedProcess, UvicornThread, free_port

pytest_plugins = ["tests.db.fixtures"]


class RunningEmulator:
    """An emulator served over real HTTP; ``tenant`` is its live state."""

    def __init__(self, server: UvicornThread, tenant: Tenant) -> None:
        self.server = server
        self.tenant = tenant
        self.url = server.url
        self.issuer = tenant.issuer


def start_emulator(tenant_data: dict[str, Any] | None = None) -> RunningEmulator:
    """Serve the demo tenant (or ``tenant_data``) on a free loopback port."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/"
    tenant = (
        Tenant.from_file(None, issuer)
        if tenant_data is None
        else Tenant.from_dict(tenant_data, issuer)
    )
    server = UvicornThread(create_emulator_app(tenant), port=port).start()
    return RunningEmulator(server, tenant)


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    """The demo tenant, fresh for each test."""
    running = start_emulator()
    yield running
    running.server.stop()


@pytest.fixture
def emulator_factory() -> Iterator[Callable[[dict[str, Any] | None], RunningEmulator]]:
    """Start emulators with custom tenants; all are stopped after the test."""
    started: list[RunningEmulator] = []

    def factory(tenant_data: dict[str, Any] | None = None) -> RunningEmulator:
        running = start_emulator(tenant_data)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.server.stop()


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[MemcachedProcess]:
    """One memcached for the session; tests namespace their keys."""
    proc = MemcachedProcess().start()
    yield proc
    proc.stop()


@pytest.fixture
def memcached() -> Iterator[MemcachedProcess]:
    """A memcached of this test's own, which the test may stop and restart."""
    proc = MemcachedProcess().start()
    yield proc
    proc.stop()
