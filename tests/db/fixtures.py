"""Database fixtures for every test (a pytest plugin named in the root ``conftest.py``).

Each backend-parametrised test runs on SQLite (a file in ``tmp_path``) and on PostgreSQL: a
throw-away server started once per session (or ``GATEWAY_TEST_POSTGRES_URL``), with a database
per test module, emptied before each test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest

import app.auth.models
import app.venues.models  # noqa: F401
from app.db import migrations
from app.db.engine import Base, Database, create_engine, open_database
from settings import DatabaseSettings
from tests.db.postgres import (
    EXTERNAL_URL_VARIABLE,
    PostgresProcess,
    create_database,
    drop_database,
    scratch_database,
    truncate,
)

BACKENDS = ["sqlite", "postgresql"]
T = TypeVar("T")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server for the session: ``GATEWAY_TEST_POSTGRES_URL`` or one of our own."""
    external = os.environ.get(EXTERNAL_URL_VARIABLE)
    if external:
        yield external
        return
    server = PostgresProcess().start()
    try:
        yield server.url
    finally:
        server.stop()


def _in_thread(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on an event loop of its own, outside any test's loop (for sync fixtures)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _migrated_database(server_url: str) -> str:
    url = await create_database(server_url)
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    return url


@pytest.fixture(scope="module")
def postgres_module_database(postgres_server_url: str) -> Iterator[str]:
    """A database of the module's own on the PostgreSQL server, at the newest schema."""
    url = _in_thread(_migrated_database(postgres_server_url))
    yield url
    _in_thread(drop_database(postgres_server_url, url))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A venue database without venues: a new SQLite file, or the module's PostgreSQL database
    emptied (creating and migrating a PostgreSQL database per test costs more than the test)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'venues.db'}"
    url: str = request.getfixturevalue("postgres_module_database")
    _in_thread(truncate(url, [table.name for table in Base.metadata.sorted_tables]))
    return url


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database without any schema: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    server_url: str = request.getfixturevalue("postgres_server_url")
    async with scratch_database(server_url) as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The venue database at the newest schema."""
    async with AsyncExitStack() as stack:
        db = open_database(DatabaseSettings(url=database_url), stack)
        await migrations.upgrade(db.engine)
        yield db
