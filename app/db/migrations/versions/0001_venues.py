"""Venues.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the venues table."""
    op.create_table(
        "venues",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.Text(), nullable=False),
        sa.Column("address", sa.String(500), nullable=False),
        sa.Column("city", sa.String(100), nullable=False),
        sa.Column("city_key", sa.Text(), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("capacity > 0", name=op.f("ck_venues_capacity_positive")),
        sa.CheckConstraint("version > 0", name=op.f("ck_venues_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_venues")),
        sa.UniqueConstraint(
            "name_key", "city_key", "country", name=op.f("uq_venues_name_key_city_key_country")
        ),
    )
    op.create_index(op.f("ix_venues_name_key_id"), "venues", ["name_key", "id"])
    op.create_index(op.f("ix_venues_city_key"), "venues", ["city_key"])


def downgrade() -> None:
    """Drop the venues table."""
    op.drop_index(op.f("ix_venues_city_key"), table_name="venues")
    op.drop_index(op.f("ix_venues_name_key_id"), table_name="venues")
    op.drop_table("venues")
