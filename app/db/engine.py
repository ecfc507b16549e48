"""The venue database: the declarative base, and one async engine and session factory per app."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from settings import DatabaseSettings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}


class Base(DeclarativeBase):
    """The base of every table; constraint names follow :data:`NAMING_CONVENTION`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no offset, PostgreSQL's ``timestamptz`` does; both read back as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC before storing."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to what SQLite returns without an offset."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


@dataclass(frozen=True)
class Database:
    """The engine and the session factory of one app."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    reads: AsyncEngine
    """``engine`` for reads of one statement (:func:`single_statement_reads`)."""


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """An async engine for ``settings.url``; it connects lazily, on first use."""
    url = make_url(settings.url)
    options: dict[str, Any] = {"echo": settings.echo}
    if url.get_backend_name() == "postgresql":
        options.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout_s,
            # No pre-ping: it is a round trip on every checkout, doubling the one read a cold
            # token costs. A connection found dead fails its request once; SQLAlchemy then
            # drops every older pooled connection, and recycling bounds their age.
            pool_recycle=settings.pool_recycle_s,
            # asyncpg waits 60 s for a server that does not answer; a request should not
            connect_args={"timeout": settings.timeout_s},
        )
        return create_async_engine(url, **options)
    # several worker processes share one SQLite file: wait for each other's writes
    engine = create_async_engine(url, connect_args={"timeout": 30}, **options)
    event.listen(engine.sync_engine, "connect", _sqlite_write_ahead_log)
    return engine


def _sqlite_write_ahead_log(dbapi_connection: Any, _: Any) -> None:
    # WAL lets readers go on while one process writes (the default journal blocks them), and
    # with it synchronous=NORMAL syncs at checkpoints instead of at every commit
    cursor = dbapi_connection.cursor()
    try:
        # the mode is kept in the file, so one connection that gets to set it is enough; the
        # switch needs the file to itself, and another connection busy writing makes it fail
        cursor.execute("PRAGMA journal_mode=WAL")
    except Exception as exc:  # the driver's OperationalError, through SQLAlchemy's adapter
        if "locked" not in str(exc):
            raise
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def single_statement_reads(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` in autocommit: for reads of one statement, which need no transaction.

    On PostgreSQL a transaction costs two round trips besides the statement (``BEGIN``, and
    the ``ROLLBACK`` when the connection goes back to the pool); in autocommit the read is one.
    The returned engine shares ``engine``'s pool.
    """
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def open_database(settings: DatabaseSettings, stack: AsyncExitStack) -> Database:
    """Build the app's database; ``stack`` disposes of its connections when the app stops."""
    engine = create_engine(settings)
    stack.push_async_callback(engine.dispose)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    return Database(engine, sessions, single_statement_reads(engine))


def display_url(engine: AsyncEngine) -> str:
    """The engine's URL without its password, fit for a log line."""
    return engine.url.render_as_string(hide_password=True)
