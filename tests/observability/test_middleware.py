"""The observability middleware on its own: labels, status of a crash, the access line; and the
log writer that keeps the event loop off the output."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import httpx
import pytest
from fastapi import FastAPI

from app.observability.logging import MASK, BackgroundLineWriter, json_handler
from app.observability.metrics import Metrics
from app.observability.middleware import ObservabilityMiddleware
from tests.observability.scrape import sample


def toy_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/healthz")
    async def get_health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    app.add_middleware(ObservabilityMiddleware, metrics=metrics, trusted_proxies=[])
    return app


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(shared_tier="memory")


@pytest.fixture
def client(metrics: Metrics) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=toy_app(metrics), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://toy")


async def test_routes_are_labelled_by_template(client: httpx.AsyncClient, metrics: Metrics) -> None:
    async with client:
        for item in (1, 2, 3):
            assert (await client.get(f"/items/{item}")).status_code == 200
        assert (await client.get("/no/such/path")).status_code == 404
        assert (await client.request("BREW", "/items/1")).status_code == 405
    text = metrics.render().decode()
    requests = "gateway_http_requests_total"
    assert sample(text, requests, route="/items/{item_id}", method="GET", status="200") == 3
    assert sample(text, requests, route="unmatched", method="GET", status="404") == 1
    assert sample(text, requests, route="/items/{item_id}", method="other", status="405") == 1
    assert "/items/1" not in text


async def test_a_crash_counts_as_500_and_logs_a_warning(
    client: httpx.AsyncClient, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.access")
    async with client:
        assert (await client.get("/crash")).status_code == 500
    text = metrics.render().decode()
    assert sample(text, "gateway_http_requests_total", route="/crash", method="GET", status="500")
    (record,) = [r for r in caplog.records if r.name == "app.access"]
    assert record.levelno == logging.WARNING
    assert record.__dict__["status"] == 500


async def test_probes_log_at_debug(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.access")
    async with client:
        await client.get("/healthz")
        await client.get("/items/7")
    levels = {r.__dict__["route"]: r.levelno for r in caplog.records if r.name == "app.access"}
    assert levels == {"/healthz": logging.DEBUG, "/items/{item_id}": logging.INFO}


JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhdXRoMHwxMjMifQ."
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)


async def test_the_access_line_has_every_field_and_masks_what_a_caller_wrote(
    client: httpx.AsyncClient,
) -> None:
    stream = io.StringIO()
    handler = json_handler(stream)
    access = logging.getLogger("app.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        async with client:
            await client.get("/items/7", headers={"X-Request-ID": "req-42.a:b"})
            await client.get(f"/items/{JWT}", headers={"X-Request-ID": JWT})
    finally:
        access.removeHandler(handler)
        access.setLevel(logging.NOTSET)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "GET /items/{item_id} 200"
    assert {k: first[k] for k in ("method", "route", "path", "status", "request_id")} == {
        "method": "GET",
        "route": "/items/{item_id}",
        "path": "/items/7",
        "status": 200,
        "request_id": "req-42.a:b",
    }
    assert first["client_ip"] == "127.0.0.1"
    assert first["duration_ms"] >= 0
    assert set(first) == {
        "timestamp",
        "level",
        "logger",
        "message",
        "pid",
        "request_id",
        "method",
        "route",
        "path",
        "status",
        "duration_ms",
        "client_ip",
        "sub",
    }
    assert JWT not in stream.getvalue()
    assert second["path"] == f"/items/{MASK}"
    assert second["request_id"] is None or MASK in second["request_id"]


def access_record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("app.access", logging.INFO, "", 0, message, args or None, None)


class TestBackgroundLineWriter:
    def test_other_lines_are_written_at_once_after_the_queued_ones(self) -> None:
        stream = io.StringIO()
        writer = BackgroundLineWriter(stream, flush_interval_s=60)
        writer.setFormatter(logging.Formatter("%(name)s %(message)s"))
        writer.handle(access_record("GET /a 200"))
        assert stream.getvalue() == ""
        writer.handle(logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "bye", None, None))
        assert stream.getvalue().splitlines() == ["app.access GET /a 200", "uvicorn.error bye"]
        writer.close()

    def test_a_stuck_output_never_blocks_the_caller(self) -> None:
        release = threading.Event()

        class StuckStream(io.StringIO):
            def write(self, text: str) -> int:
                release.wait(5)
                return super().write(text)

        stream = StuckStream()
        writer = BackgroundLineWriter(stream, flush_interval_s=0.01)
        writer.setFormatter(logging.Formatter("%(message)s"))
        started = time.monotonic()
        for i in range(200):
            writer.handle(access_record("line %d", i))
            time.sleep(0.0005)
        assert time.monotonic() - started < 2, "emit waited for the output"
        release.set()
        writer.close()
        assert stream.getvalue().splitlines() == [f"line {i}" for i in range(200)]

    def test_a_full_queue_drops_lines_and_says_how_many(self) -> None:
        stream = io.StringIO()
        writer = BackgroundLineWriter(stream, flush_interval_s=60, max_pending=3)
        writer.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        for i in range(5):
            writer.handle(access_record("line %d", i))
        writer.flush()
        assert stream.getvalue().splitlines() == [
            "INFO line 0",
            "INFO line 1",
            "INFO line 2",
            "WARNING 2 log lines dropped: the log output did not keep up",
        ]
        writer.close()

    def test_close_writes_what_is_queued(self) -> None:
        stream = io.StringIO()
        writer = BackgroundLineWriter(stream, flush_interval_s=60)
        writer.setFormatter(logging.Formatter("%(message)s"))
        writer.handle(access_record("last words"))
        assert stream.getvalue() == ""
        writer.close()
        assert stream.getvalue() == "last words\n"
