"""Alembic revisions of the venue database, oldest first."""
