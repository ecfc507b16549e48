"""Cookie mode: a session may be held by a browser through an opaque handle.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add auth_sessions.browser_handle (unique) and auth_sessions.browser_token."""
    # plain ALTER TABLE (SQLite has it): a batch copy of the table would cascade to its tokens
    op.add_column("auth_sessions", sa.Column("browser_handle", sa.String(64), nullable=True))
    op.add_column("auth_sessions", sa.Column("browser_token", sa.LargeBinary(), nullable=True))
    op.create_index(
        op.f("ix_auth_sessions_browser_handle"), "auth_sessions", ["browser_handle"], unique=True
    )


def downgrade() -> None:
    """Drop the browser columns."""
    op.drop_index(op.f("ix_auth_sessions_browser_handle"), table_name="auth_sessions")
    op.drop_column("auth_sessions", "browser_token")
    op.drop_column("auth_sessions", "browser_handle")
