"""The observability middleware on its own: labels, status of a crash, the access-log level."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

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
