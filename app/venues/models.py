"""The ``venues`` table."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.engine import Base, UTCDateTime

NAME_MAX = 200
ADDRESS_MAX = 500
CITY_MAX = 100
TIMEZONE_MAX = 64


class Venue(Base):
    """A venue; ``version`` grows by one with every change (the ETag)."""

    __tablename__ = "venues"
    __table_args__ = (
        # one venue of a name per city; the keys are the case- and space-folded spellings
        UniqueConstraint("name_key", "city_key", "country"),
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("version > 0", name="version_positive"),
        Index(None, "name_key", "id"),
        Index(None, "city_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    name_key: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(String(ADDRESS_MAX))
    city: Mapped[str] = mapped_column(String(CITY_MAX))
    city_key: Mapped[str] = mapped_column(Text)
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(TIMEZONE_MAX))
    capacity: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
