"""The gateway served for real (uvicorn on a free loopback port, the emulator and memcached
behind it) for clients generated from its own ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.main import create_app
from tests.conftest import RunningEmulator
from tests.e2e.conftest import gateway_settings
from tests.servers import MemcachedProcess, UvicornThread


@pytest.fixture
def live_gateway(emulator: RunningEmulator, memcached_server: MemcachedProcess) -> Iterator[str]:
    """The gateway's URL."""
    server = UvicornThread(create_app(gateway_settings(emulator, memcached_server.url))).start()
    try:
        yield server.url
    finally:
        server.stop()
