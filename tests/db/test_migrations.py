"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from app.db import migrations
from app.db.engine import Base, open_database
from settings import DatabaseSettings


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_matches_the_models_and_downgrade_undoes_it(
    empty_database_url: str,
) -> None:
    async with AsyncExitStack() as stack:
        engine = open_database(DatabaseSettings(url=empty_database_url), stack).engine
        assert await migrations.current_revision(engine) is None
        await migrations.upgrade(engine)
        assert await migrations.current_revision(engine) == migrations.head_revision()
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
        await migrations.downgrade(engine, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == {"alembic_version"}
        await migrations.upgrade(engine)
        assert await migrations.current_revision(engine) == migrations.head_revision()


async def test_concurrent_upgrades_one_migrates_the_others_wait(empty_database_url: str) -> None:
    async with AsyncExitStack() as stack:
        engines = [
            open_database(DatabaseSettings(url=empty_database_url), stack).engine for _ in range(3)
        ]
        # as worker processes starting together on one database do
        await asyncio.gather(*(migrations.upgrade(engine) for engine in engines))
        assert await migrations.current_revision(engines[0]) == migrations.head_revision()
