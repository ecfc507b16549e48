"""A database outage is a 503 ``database_unavailable`` in the one shape, never a 500 traceback."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.http.errors import install_error_handlers


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")),
        PoolTimeout("QueuePool limit of size 10 overflow 0 reached"),
    ],
)
async def test_a_database_error_is_a_503(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/read")
    async def read() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/read")
    assert response.status_code == 503
    assert response.json() == {
        "error": "database_unavailable",
        "error_description": "The database is unavailable; try again shortly.",
    }
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
