"""Body bounds on every route that reads one: size, JSON depth, and a client that goes away."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from app.http.body_limit import MAX_BODY_BYTES, MAX_JSON_DEPTH, BodyLimitRoute, json_depth
from app.http.errors import install_error_handlers
from app.main import create_app
from app.server import SERVER_OPTIONS
from settings import Environment, Settings
from tests.conftest import RunningEmulator
from tests.e2e.conftest import ADMIN, bearer, login
from tests.servers import UvicornThread


def nested(depth: int) -> str:
    """A JSON object nested ``depth`` levels deep."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


class TestJsonDepth:
    def test_counts_objects_and_arrays_not_brackets_in_strings(self) -> None:
        assert json_depth(b"1") == 0
        assert json_depth(b'{"a": [1, {"b": []}]}') == 4
        assert json_depth(b'{"a": "[[[[{{{{\\\\\\"[[["}') == 1
        assert json_depth(nested(300).encode()) == 300

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("PATCH", "/users/me", '{"user_metadata": ' + nested(300) + "}"),
            ("POST", "/venues", '{"name": ' + nested(300) + "}"),
            ("POST", "/auth/login", '{"username": ' + nested(300) + "}"),
        ],
    )
    async def test_deep_bodies_are_400_in_the_one_shape(
        self,
        gateway: httpx.AsyncClient,
        caplog: pytest.LogCaptureFixture,
        method: str,
        path: str,
        body: str,
    ) -> None:
        token = await login(gateway, ADMIN)
        response = await gateway.request(
            method,
            path,
            content=body,
            headers={**bearer(token), "content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    async def test_the_bound_itself_is_accepted(self, gateway: httpx.AsyncClient) -> None:
        token = await login(gateway, ADMIN)
        body = '{"name": ' + nested(MAX_JSON_DEPTH - 1) + "}"
        response = await gateway.post(
            "/venues", content=body, headers={**bearer(token), "content-type": "application/json"}
        )
        assert response.status_code == 422  # refused by the schema, not by the depth bound


@pytest.fixture
def served(emulator: RunningEmulator, tmp_path: Path) -> Iterator[str]:
    """The gateway behind uvicorn on a free loopback port."""
    settings = Settings(
        env=Environment.LOCAL,
        auth0={"domain": emulator.url},
        cache={"url": "memory://"},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"},
    )
    server = UvicornThread(create_app(settings), **SERVER_OPTIONS).start()
    yield server.url
    server.stop()


async def test_a_client_that_disconnects_mid_body_is_quiet(
    served: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host, port = served.removeprefix("http://").split(":")

    def send_half() -> None:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"POST /auth/login HTTP/1.1\r\nHost: gateway\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                b'{"username": "'
            )

    await asyncio.to_thread(send_half)
    access: list[logging.LogRecord] = []
    for _ in range(50):
        access = [r for r in caplog.records if r.name == "app.access"]
        if access:
            break
        await asyncio.sleep(0.1)
    assert access, "the request was never logged"
    assert access[0].levelno <= logging.INFO
    assert getattr(access[0], "status", None) == 499
    assert not [r for r in caplog.records if r.levelno > logging.INFO and r.name != "app.access"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    async with httpx.AsyncClient(base_url=served) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_a_body_no_route_reads_is_left_to_the_server(served: str) -> None:
    """A route without a body does not read one: uvicorn discards it after the answer, and the
    connection serves the next request."""
    async with httpx.AsyncClient(base_url=served) as client:
        ignored = await client.post("/auth/logout", content=b"x" * 4_000_000)
        assert ignored.status_code == 401, ignored.text
        assert ignored.json()["error"] == "invalid_request"
        # the same connection, after the unread body
        assert (await client.get("/healthz")).status_code == 200
        read = await client.post(
            "/venues", content=b"x" * 4_000_000, headers={"content-type": "application/json"}
        )
        assert read.status_code == 413, read.text


async def test_a_body_read_without_being_declared_is_still_counted() -> None:
    """Fail closed: a handler that reads the body itself, though its route declares none, gets
    no more than the size limit (the gateway's routes declare theirs; this is the backstop)."""
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(route_class=BodyLimitRoute)

    @router.post("/echo-length")
    async def echo_length(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        small = await client.post("/echo-length", content=b"x" * 1000)
        assert small.json() == {"bytes": 1000}
        big = await client.post("/echo-length", content=b"x" * (MAX_BODY_BYTES + 1))
        assert big.status_code == 413, big.text
        assert big.json()["error"] == "request_too_large"
