"""Header limits and read timeouts at the server: the gateway under uvicorn on a loopback port,
spoken to over raw sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.main import create_app
from app.server import SERVER_OPTIONS, server_options
from settings import Environment, Settings
from settings.model import ServerSettings
from tests.conftest import RunningEmulator
from tests.servers import UvicornThread

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5


@dataclass
class Reply:
    """What a raw connection got back before the server closed it (or the wait ran out)."""

    data: bytes
    closed: bool
    seconds: float

    @property
    def status(self) -> int | None:
        if not self.data.startswith(b"HTTP/1.1 "):
            return None
        return int(self.data[9:12])

    def json(self) -> object:
        return json.loads(self.data.partition(b"\r\n\r\n")[2])


def exchange(
    port: int,
    *chunks: bytes,
    pause_s: float = 0.0,
    wait_s: float = 5.0,
) -> Reply:
    """Send ``chunks`` (``pause_s`` apart), then read until the server closes or ``wait_s``."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        for index, chunk in enumerate(chunks):
            if index and pause_s:
                time.sleep(pause_s)
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server already answered and closed
        data, closed = b"", False
        try:
            while True:
                part = sock.recv(65_536)
                if not part:
                    closed = True
                    break
                data += part
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
    return Reply(data, closed, time.monotonic() - started)


def request(*headers: bytes, method: bytes = b"GET", path: bytes = b"/healthz") -> bytes:
    """A request with ``headers`` after ``Host``, asking the server to close afterwards."""
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: gateway", *headers]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


@pytest.fixture
def gateway_port(emulator: RunningEmulator, tmp_path: Path) -> Iterator[int]:
    """The gateway behind uvicorn with the connection limits of its settings, short timeouts."""
    settings = Settings(
        env=Environment.LOCAL,
        auth0={"domain": emulator.url},
        cache={"url": "memory://"},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"},
        server={"header_timeout_s": HEADER_TIMEOUT_S, "body_timeout_s": BODY_TIMEOUT_S},
    )
    server = UvicornThread(create_app(settings), **server_options(settings.server)).start()
    yield server.port
    server.stop()


class TestHeaderLimits:
    def test_a_64_kib_header_is_431_and_the_connection_closed(self, gateway_port: int) -> None:
        reply = exchange(gateway_port, request(b"X-Big: " + b"a" * 65_536))
        assert reply.status == 431
        assert reply.json() == {
            "error": "request_header_too_large",
            "error_description": "The request header is larger than 32768 bytes.",
        }
        assert reply.closed

    def test_a_header_still_arriving_is_refused_before_it_ends(self, gateway_port: int) -> None:
        start = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Big: "
        reply = exchange(gateway_port, start, b"a" * 40_000, b"a" * 40_000, pause_s=0.05)
        assert reply.status == 431
        assert reply.closed

    def test_a_thousand_header_lines_are_431(self, gateway_port: int) -> None:
        lines = [b"X-Line-%d: v" % i for i in range(1_000)]
        reply = exchange(gateway_port, request(*lines))
        assert reply.status == 431
        assert reply.json() == {
            "error": "request_header_too_large",
            "error_description": "The request has more than 100 header fields.",
        }
        assert reply.closed

    def test_a_long_request_line_counts(self, gateway_port: int) -> None:
        reply = exchange(gateway_port, request(path=b"/healthz?q=" + b"a" * 40_000))
        assert reply.status == 431

    def test_headers_within_the_limits_are_served(self, gateway_port: int) -> None:
        lines = [b"X-Line-%d: v" % i for i in range(90)]
        reply = exchange(gateway_port, request(b"Authorization: Bearer " + b"t" * 16_000, *lines))
        assert reply.status == 200, reply.data[:200]

    def test_settings_set_the_limits(self, emulator: RunningEmulator, tmp_path: Path) -> None:
        settings = Settings(
            env=Environment.LOCAL,
            auth0={"domain": emulator.url},
            cache={"url": "memory://"},
            database={"url": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"},
            server={"max_header_bytes": 4_096, "max_header_count": 10},
        )
        server = UvicornThread(create_app(settings), **server_options(settings.server)).start()
        try:
            lines = [b"X-%d: v" % i for i in range(9)]  # with Host and Connection: 11
            assert exchange(server.port, request(b"X-A: " + b"a" * 5_000)).status == 431
            assert exchange(server.port, request(*lines)).status == 431
            assert exchange(server.port, request(*lines[:-1])).status == 200
        finally:
            server.stop()

    def test_the_shared_options_carry_the_default_limits(self) -> None:
        assert SERVER_OPTIONS["http"] is server_options(ServerSettings())["http"].func
        defaults = ServerSettings()
        assert (defaults.max_header_bytes, defaults.max_header_count) == (32_768, 100)
        assert (defaults.header_timeout_s, defaults.body_timeout_s) == (10.0, 30.0)


class TestSlowClients:
    def test_half_a_request_line_then_silence_is_cut(self, gateway_port: int) -> None:
        reply = exchange(gateway_port, b"GET /heal")
        assert reply.closed
        assert HEADER_TIMEOUT_S - 0.1 < reply.seconds < HEADER_TIMEOUT_S + 1
        assert reply.status == 408
        assert reply.json() == {
            "error": "request_timeout",
            "error_description": "The request header did not arrive within 0.5 s.",
        }

    def test_a_trickled_header_is_cut_although_bytes_keep_coming(self, gateway_port: int) -> None:
        trickle = [b"GET /healthz HTTP/1.1\r\n"] + [b"X-%d: v\r\n" % i for i in range(20)]
        reply = exchange(gateway_port, *trickle, pause_s=0.1)
        assert reply.closed
        assert reply.status == 408
        assert reply.seconds < 20 * 0.1, "cut before the trickle ended"

    def test_a_connection_that_sends_nothing_is_closed_silently(self, gateway_port: int) -> None:
        reply = exchange(gateway_port)
        assert reply.closed
        assert reply.data == b""
        assert reply.seconds < HEADER_TIMEOUT_S + 1

    def test_a_stalled_body_is_cut(self, gateway_port: int) -> None:
        head = (
            b"POST /auth/login HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        reply = exchange(gateway_port, head + b'{"username": "')
        assert reply.closed
        assert reply.data == b""
        assert BODY_TIMEOUT_S - 0.1 < reply.seconds < BODY_TIMEOUT_S + 1

    async def test_keep_alive_between_requests_is_not_a_slow_header(
        self, gateway_port: int
    ) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway_port)
        try:
            for _ in range(2):
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200 "), head
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                # idle longer than the header timeout: only uvicorn's keep-alive (5 s) applies
                await asyncio.sleep(HEADER_TIMEOUT_S * 2)
        finally:
            writer.close()
            await writer.wait_closed()
