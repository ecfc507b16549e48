"""Fixtures shared by every test: a real memcached process and the emulator as a real server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib import resources
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


#: Login limits for the tests' tenants. Auth0's (20 logins a minute per account and IP, then 10;
#: 100 failed logins a day per IP) are the emulator's defaults, and the tests log the demo users
#: in again and again from 127.0.0.1, so tenants that do not set these keys get roomy ones. The
#: tests of the limits set them in their tenant data.
ROOMY_LOGIN_LIMITS = {
    "same_user_login_burst": 100_000,
    "same_user_login_per_minute": 100_000,
    "suspicious_ip_max_attempts": 100_000,
    "suspicious_ip_per_day": 100_000,
}


def start_emulator(tenant_data: dict[str, Any] | None = None) -> RunningEmulator:
    """Serve the demo tenant (or ``tenant_data``) on a free loopback port.

    Login limits the tenant data leaves unset are :data:`ROOMY_LOGIN_LIMITS`.
    """
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/"
    if tenant_data is None:
        text = resources.files("emulator").joinpath("demo_tenant.json").read_text()
        tenant_data = json.loads(text)
    data = {**tenant_data, "limits": {**ROOMY_LOGIN_LIMITS, **tenant_data.get("limits", {})}}
    tenant = Tenant.from_dict(data, issuer)
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
