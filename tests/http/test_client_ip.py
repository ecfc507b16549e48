"""The client IP: ``X-Forwarded-For`` counts only from ``GATEWAY_TRUSTED_PROXIES``.

The gateway is served over real TCP as ``gateway serve`` serves it (uvicorn's own proxy-header
parsing off), so the peer is 127.0.0.1. What the emulator saw as the login's IP (its
brute-force counter keys on ``auth0-forwarded-for``) is what the gateway sent to Auth0.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from app.http.client_ip import client_ip
from app.main import create_app
from app.observability.logging import json_handler
from app.server import SERVER_OPTIONS
from app.users.service import _limit_key
from settings import Environment, Settings
from tests.conftest import RunningEmulator
from tests.e2e.conftest import VIEWER
from tests.servers import UvicornThread

Serve = Callable[[list[str]], str]
USER_ID = "auth0|demo-viewer"


class AccessLog(logging.Handler):
    """The access lines, as the production JSON handler writes them, with a signal per line."""

    def __init__(self) -> None:
        super().__init__()
        self.stream = io.StringIO()
        self._json = json_handler(self.stream)
        self.written = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self._json.handle(record)
        self.written.set()


@pytest.fixture
def access_log() -> Iterator[AccessLog]:
    """The JSON access lines."""
    handler = AccessLog()
    logger = logging.getLogger("app.access")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


@pytest.fixture
def serve(emulator: RunningEmulator, tmp_path: Path) -> Iterator[Serve]:
    """Serve a gateway trusting the given proxies; its URL."""
    servers: list[UvicornThread] = []

    def start(trusted_proxies: list[str]) -> str:
        settings = Settings(
            env=Environment.LOCAL,
            auth0={"domain": emulator.url},
            cache={"url": "memory://"},
            database={"url": f"sqlite+aiosqlite:///{tmp_path / f'v{len(servers)}.db'}"},
            trusted_proxies=trusted_proxies,
        )
        server = UvicornThread(create_app(settings), **SERVER_OPTIONS).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


async def wrong_login(url: str, forwarded_for: str | None) -> None:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/auth/login",
            json={"username": VIEWER[0], "password": "Not-The-Passw0rd!"},
            headers=headers,
        )
    assert response.status_code == 401


async def logged_ip(access_log: AccessLog) -> str:
    # the server thread writes the access line after the response went out
    assert await asyncio.to_thread(access_log.written.wait, 5)
    line = json.loads(access_log.stream.getvalue().splitlines()[-1])
    assert line["route"] == "/auth/login"
    ip: str = line["client_ip"]
    return ip


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        # a client-forged entry on the left is never reached: the proxy appended the real one
        ("6.6.6.6, 198.51.100.7", "198.51.100.7"),
        # chains through several trusted proxies are walked from the right
        ("198.51.100.7, 127.0.0.2", "198.51.100.7"),
        # a malformed chain is not believed at all
        ("198.51.100.7, not-an-ip", "127.0.0.1"),
    ],
)
async def test_trusted_proxy_forwards_the_user_ip(
    serve: Serve,
    emulator: RunningEmulator,
    access_log: AccessLog,
    forwarded_for: str,
    expected: str,
) -> None:
    url = serve(["127.0.0.0/8"])
    await wrong_login(url, forwarded_for)
    assert set(emulator.tenant.failed_logins) == {(USER_ID, expected)}
    assert await logged_ip(access_log) == expected


async def test_untrusted_peer_cannot_spoof(
    serve: Serve, emulator: RunningEmulator, access_log: AccessLog
) -> None:
    url = serve(["10.0.0.0/8"])
    await wrong_login(url, "198.51.100.7")
    assert set(emulator.tenant.failed_logins) == {(USER_ID, "127.0.0.1")}
    assert await logged_ip(access_log) == "127.0.0.1"


async def test_no_trusted_proxies_by_default(
    serve: Serve, emulator: RunningEmulator, access_log: AccessLog
) -> None:
    url = serve([])
    await wrong_login(url, "198.51.100.7")
    assert set(emulator.tenant.failed_logins) == {(USER_ID, "127.0.0.1")}
    assert await logged_ip(access_log) == "127.0.0.1"


def request_from(peer: str, forwarded_for: str | None = None) -> Request:
    """A request as a dual-stack server hands it over: the peer as uvicorn reports it."""
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for else []
    return Request({"type": "http", "client": (peer, 50000), "headers": headers})


class TestIPv4MappedAddresses:
    def test_an_ipv4_client_of_a_dual_stack_listener_is_its_ipv4_address(self) -> None:
        assert client_ip(request_from("::ffff:203.0.113.9"), []) == "203.0.113.9"
        assert client_ip(request_from("2001:db8::1"), []) == "2001:db8::1"

    def test_a_mapped_proxy_is_trusted_and_mapped_hops_are_unmapped(self) -> None:
        proxies = [ipaddress.ip_network("127.0.0.0/8")]
        request = request_from("::ffff:127.0.0.1", "::ffff:198.51.100.7")
        assert client_ip(request, proxies) == "198.51.100.7"

    def test_a_mapped_trusted_proxy_without_x_forwarded_for_is_its_ipv4_address(self) -> None:
        proxies = [ipaddress.ip_network("127.0.0.0/8")]
        assert client_ip(request_from("::ffff:127.0.0.1"), proxies) == "127.0.0.1"

    def test_ipv4_clients_do_not_share_one_sign_up_bucket(self) -> None:
        first = _limit_key(client_ip(request_from("::ffff:203.0.113.9"), []))
        second = _limit_key(client_ip(request_from("::ffff:203.0.113.10"), []))
        assert first != second
        assert _limit_key("::ffff:203.0.113.9") == _limit_key("203.0.113.9")

    def test_a_forwarded_ipv6_zone_is_not_an_address(self) -> None:
        """``fe80::1%<anything>`` parses as an address whose zone is free text: refused."""
        proxies = [ipaddress.ip_network("127.0.0.0/8")]
        zoned = "fe80::1%eyJhbGciOiJSUzI1NiJ9"
        assert client_ip(request_from("127.0.0.1", zoned), proxies) == "127.0.0.1"
        assert client_ip(request_from(zoned), []) == zoned  # the server's own word, not a header
