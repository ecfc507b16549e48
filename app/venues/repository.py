"""Venue queries: keyset pagination, and changes that only land on the version the caller read."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import Executable

from app.http.errors import Conflict, NotFound
from app.venues.cursor import Cursor
from app.venues.models import Venue
from app.venues.preconditions import PreconditionFailed
from app.venues.schemas import VenueCreate, VenueUpdate, match_key

#: ``expected`` versions of a change: ``None`` accepts any (``If-Match: *`` or no header).
Versions = frozenset[int] | None


class VenueNotFound(NotFound):
    """No venue has this id (404)."""

    description = "No venue has this id."


class DuplicateVenue(Conflict):
    """A venue of this name exists in this city (409)."""

    description = "A venue with this name already exists in this city."


_BY_ID = select(Venue.__table__).where(Venue.__table__.c.id == bindparam("venue_id"))


class VenueReader:
    """One venue by id in one statement, without an ORM session: the hot read of the API.

    ``GET /venues/{id}`` needs no unit of work: a session, its identity map and the ORM's
    loading cost several times the query itself. The row has the venue's columns as
    attributes, which is all :class:`~app.venues.schemas.VenueOut` reads.
    """

    def __init__(self, reads: AsyncEngine) -> None:
        """``reads``: an engine in autocommit (:attr:`app.db.engine.Database.reads`)."""
        self._reads = reads

    async def get(self, venue_id: uuid.UUID) -> Row[Any]:
        """The venue's row, or 404."""
        async with self._reads.connect() as conn:
            row = (await conn.execute(_BY_ID, {"venue_id": venue_id})).first()
        if row is None:
            raise VenueNotFound
        return row


class VenueRepository:
    """Venue queries over one session; every write is its own transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, data: VenueCreate, *, created_by: str) -> Venue:
        """Store a new venue at version 1; 409 when its name is taken in its city."""
        now = datetime.now(UTC)
        venue = Venue(
            id=uuid.uuid4(),
            **data.model_dump(),
            name_key=match_key(data.name),
            city_key=match_key(data.city),
            created_by=created_by,
            created_at=now,
            updated_at=now,
            version=1,
        )
        self.session.add(venue)
        await self._commit()
        return venue

    async def get(self, venue_id: uuid.UUID) -> Venue:
        """The venue, or 404."""
        await self._read_only()
        venue = await self.session.get(Venue, venue_id)
        if venue is None:
            raise VenueNotFound
        return venue

    async def page(
        self,
        *,
        limit: int,
        after: Cursor | None = None,
        city: str | None = None,
        country: str | None = None,
        name_contains: str | None = None,
    ) -> tuple[Sequence[Venue], Cursor | None]:
        """Up to ``limit`` venues by name after ``after``, and the cursor of the next page."""
        query = select(Venue)
        if city is not None:
            query = query.where(Venue.city_key == match_key(city))
        if country is not None:
            query = query.where(Venue.country == country)
        if name_contains:
            query = query.where(Venue.name_key.contains(match_key(name_contains), autoescape=True))
        if after is not None:
            query = query.where(
                or_(
                    Venue.name_key > after.name_key,
                    and_(Venue.name_key == after.name_key, Venue.id > after.id),
                )
            )
        query = query.order_by(Venue.name_key, Venue.id).limit(limit + 1)
        await self._read_only()
        venues = (await self.session.scalars(query)).all()
        if len(venues) <= limit:
            return venues, None
        last = venues[limit - 1]
        return venues[:limit], Cursor(last.name_key, last.id)

    async def update(
        self, venue_id: uuid.UUID, changes: VenueUpdate, *, expected: Versions
    ) -> Venue:
        """Apply ``changes`` if the venue is at an ``expected`` version; 404, 409 or 412 if not.

        One ``UPDATE ... WHERE id = ? AND version IN (...)``: of concurrent changes made from the
        same version exactly one matches a row, whatever the isolation level.
        """
        values: dict[str, object] = dict(changes.changes())
        if changes.name is not None:
            values["name_key"] = match_key(changes.name)
        if changes.city is not None:
            values["city_key"] = match_key(changes.city)
        values.update(version=Venue.version + 1, updated_at=datetime.now(UTC))
        statement = update(Venue).where(Venue.id == venue_id)
        if expected is not None:
            statement = statement.where(Venue.version.in_(expected))
        statement = (
            statement.values(values)
            .returning(Venue)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        venue: Venue = await self._write(statement, venue_id, expected)
        return venue

    async def delete(self, venue_id: uuid.UUID, *, expected: Versions = None) -> None:
        """Delete the venue (at an ``expected`` version, when given); 404 or 412 if not."""
        statement = delete(Venue).where(Venue.id == venue_id)
        if expected is not None:
            statement = statement.where(Venue.version.in_(expected))
        await self._write(statement.returning(Venue.id), venue_id, expected)

    async def _write(self, statement: Executable, venue_id: uuid.UUID, expected: Versions) -> Any:
        """Run a write returning what it changed; when it changed nothing, say why (404, 412)."""
        row = None
        if expected is None or expected:
            try:
                result = await self.session.execute(statement)
                row = result.scalar_one_or_none()
            except IntegrityError as exc:
                await self.session.rollback()
                raise DuplicateVenue from exc
        if row is not None:
            await self._commit()
            return row
        await self.session.rollback()
        if await self.session.get(Venue, venue_id) is None:
            raise VenueNotFound
        raise PreconditionFailed

    async def _read_only(self) -> None:
        """A read that opens the session's work runs outside a transaction (autocommit).

        One statement needs none, and on PostgreSQL a transaction costs two round trips more
        (``BEGIN``, and the ``ROLLBACK`` when the session closes): a venue read is one round
        trip instead of three. Writes are single statements each committed on their own, so a
        write after such a read in one session stays atomic.
        """
        if not self.session.in_transaction():
            await self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})

    async def _commit(self) -> None:
        try:
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            raise DuplicateVenue from exc
