"""The venue database's schema: Alembic migrations, run from code (no ``alembic.ini``).

The scripts ship inside the package, so ``gateway db upgrade`` works from any directory and from an
installed wheel. Concurrent upgrades (several workers starting at once) are serialised: SQLite by
``BEGIN IMMEDIATE``, PostgreSQL by a transaction-scoped advisory lock; the loser then finds the
schema current and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import display_url

log = logging.getLogger("app.db.migrations")

SCRIPTS = Path(__file__).parent
#: The advisory lock id PostgreSQL migrations hold ("venue" in ASCII).
_PG_LOCK_ID = 0x76656E7565


def alembic_config() -> Config:
    """Alembic's configuration, pointing at the scripts in this package."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    return config


def head_revision() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None``: never migrated)."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``."""
    await _migrate(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Take the schema down to ``revision`` (``base``: drop everything)."""
    await _migrate(engine, lambda config: command.downgrade(config, revision))


async def prepare_schema(engine: AsyncEngine, *, migrate: bool) -> None:
    """At start-up: upgrade the schema (``migrate``), or only warn when it is behind the code."""
    if migrate:
        await upgrade(engine)
        return
    head = head_revision()
    try:
        current = await current_revision(engine)
    except Exception as exc:  # the gateway still serves logins without its database
        log.warning("database %s unreachable at start-up: %s", display_url(engine), exc)
        return
    if current != head:
        log.warning(
            "database schema is at %s, the code expects %s: run `gateway db upgrade`",
            current or "nothing",
            head,
        )


async def _migrate(engine: AsyncEngine, operation: Callable[[Config], None]) -> None:
    def run(connection: Connection) -> None:
        _lock(connection)
        config = alembic_config()
        config.attributes["connection"] = connection
        operation(config)

    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()


def _lock(connection: Connection) -> None:
    """Take the migration lock for the rest of the connection's transaction."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
