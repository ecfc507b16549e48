"""The ``/users`` routes end to end: the gateway over a real memcached and the emulator.

The end-to-end fixtures (and their autouse leak check) come from ``tests/e2e/conftest.py``.
``emulator`` is the demo tenant with a roomier Management API rate limit than the Free plan's
2 per second, so route tests do not depend on timing; the rate limit has its own tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RunningEmulator, start_emulator
from tests.e2e.conftest import (  # noqa: F401 - fixtures, re-exported for this directory
    emulator_http,
    gateway,
    gateway_factory,
    no_token_leaks,
    recorder,
)
from tests.emulator.auth_helpers import demo_tenant


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    """The demo tenant, Management API limit 100 a second."""
    data = demo_tenant()
    data["limits"].update({"management_burst": 100, "management_per_second": 100})
    running = start_emulator(data)
    yield running
    running.server.stop()
