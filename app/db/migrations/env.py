"""Alembic's environment: migrations run on the connection :mod:`app.db.migrations` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import app.auth.models
import app.venues.models  # noqa: F401
from app.db.engine import Base


def run_migrations(connection: Connection) -> None:
    """Run the pending migrations inside the caller's transaction."""
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters tables by copying them ("batch" mode)
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError(
        "run migrations with `gateway db upgrade` (app.db.migrations), not alembic's CLI"
    )
run_migrations(_connection)
