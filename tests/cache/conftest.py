"""Cache fixtures: three memcached for the session, and twemproxy in front of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import MemcachedProcess, TwemproxyProcess


@pytest.fixture(scope="session")
def memcached_trio() -> Iterator[list[MemcachedProcess]]:
    """Three memcached for the session; tests namespace their keys."""
    servers = [MemcachedProcess().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def twemproxy_server(
    memcached_trio: list[MemcachedProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwemproxyProcess]:
    """twemproxy (nutcracker) in front of the three memcached."""
    directory: Path = tmp_path_factory.mktemp("twemproxy")
    proxy = TwemproxyProcess([server.port for server in memcached_trio], str(directory)).start()
    yield proxy
    proxy.stop()
