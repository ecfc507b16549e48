"""Sessions, their lineage, and revocations: the database becomes the record.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create auth_sessions, auth_session_tokens and auth_revocations."""
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("sub", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("refreshed_at", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("refresh_owner", sa.String(32), nullable=True),
        sa.Column("refreshing_until", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
    )
    op.create_index(op.f("ix_auth_sessions_sub"), "auth_sessions", ["sub"])
    op.create_index(op.f("ix_auth_sessions_expires_at"), "auth_sessions", ["expires_at"])
    op.create_table(
        "auth_session_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("refreshed_at", sa.BigInteger(), nullable=True),
        sa.Column("successor", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["auth_sessions.id"],
            name=op.f("fk_auth_session_tokens_session_id_auth_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_session_tokens")),
    )
    op.create_index(
        op.f("ix_auth_session_tokens_session_id"), "auth_session_tokens", ["session_id"]
    )
    op.create_table(
        "auth_revocations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("sub", sa.Text(), nullable=True),
        sa.Column("issued_before", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_revocations")),
    )
    op.create_index(
        op.f("ix_auth_revocations_token_hash"), "auth_revocations", ["token_hash"], unique=True
    )
    op.create_index(op.f("ix_auth_revocations_sub"), "auth_revocations", ["sub"])
    op.create_index(op.f("ix_auth_revocations_created_at"), "auth_revocations", ["created_at"])
    op.create_index(op.f("ix_auth_revocations_expires_at"), "auth_revocations", ["expires_at"])


def downgrade() -> None:
    """Drop the session tables."""
    op.drop_table("auth_revocations")
    op.drop_table("auth_session_tokens")
    op.drop_table("auth_sessions")
