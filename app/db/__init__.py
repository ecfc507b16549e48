"""The database: the engine and its pools, Alembic migrations, and the `gateway db` commands."""
