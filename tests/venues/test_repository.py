"""The venue repository on SQLite and PostgreSQL: constraints, keyset pages, compare-and-set."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.engine import Database
from app.http.errors import BadRequest
from app.venues.cursor import Cursor
from app.venues.models import Venue
from app.venues.preconditions import PreconditionFailed
from app.venues.repository import DuplicateVenue, VenueNotFound, VenueReader, VenueRepository
from app.venues.schemas import VenueCreate, VenueOut, VenueUpdate
from tests.venues.conftest import TEMPODROM, fullwidth


def venue(**fields: Any) -> VenueCreate:
    """Tempodrom, Berlin, unless ``fields`` say otherwise."""
    return VenueCreate.model_validate({**TEMPODROM, **fields})


async def create(database: Database, **fields: Any) -> Venue:
    async with database.sessions() as session:
        return await VenueRepository(session).create(venue(**fields), created_by="auth0|tester")


async def read(database: Database, venue_id: uuid.UUID) -> Venue:
    async with database.sessions() as session:
        return await VenueRepository(session).get(venue_id)


async def update(database: Database, venue_id: uuid.UUID, expected: int, **changes: Any) -> Venue:
    async with database.sessions() as session:
        return await VenueRepository(session).update(
            venue_id, VenueUpdate.model_validate(changes), expected=frozenset({expected})
        )


def _isolation(connection: AsyncConnection) -> object:
    """The isolation level the session asked of this connection (None: the default)."""
    options = (
        connection.sync_connection.get_execution_options() if connection.sync_connection else {}
    )
    return options.get("isolation_level")


class TestReads:
    async def test_a_read_runs_outside_a_transaction(self, database: Database) -> None:
        """One statement, no BEGIN and no ROLLBACK around it: one round trip on PostgreSQL."""
        created = await create(database)
        async with database.sessions() as session:
            repository = VenueRepository(session)
            assert (await repository.get(created.id)).id == created.id
            connection = await session.connection()
            assert _isolation(connection) == "AUTOCOMMIT"
            assert len((await repository.page(limit=5))[0]) == 1

    async def test_the_reader_answers_what_the_session_reads(self, database: Database) -> None:
        created = await create(database)
        row = await VenueReader(database.reads).get(created.id)
        assert VenueOut.model_validate(row) == VenueOut.model_validate(created)
        assert row.created_at.utcoffset() == UTC.utcoffset(None)
        with pytest.raises(VenueNotFound):
            await VenueReader(database.reads).get(uuid.uuid4())

    async def test_a_write_after_a_read_in_one_session_is_kept(self, database: Database) -> None:
        created = await create(database)
        async with database.sessions() as session:
            repository = VenueRepository(session)
            await repository.get(created.id)
            await repository.update(
                created.id, VenueUpdate.model_validate({"capacity": 42}), expected=frozenset({1})
            )
        stored = await read(database, created.id)
        assert (stored.capacity, stored.version) == (42, 2)

    async def test_a_write_session_keeps_its_transaction(self, database: Database) -> None:
        async with database.sessions() as session:
            await VenueRepository(session).create(venue(), created_by="auth0|tester")
            connection = await session.connection()
            assert _isolation(connection) is None


class TestCreate:
    async def test_round_trip(self, database: Database) -> None:
        created = await create(database)
        stored = await read(database, created.id)
        assert (stored.name, stored.city, stored.capacity, stored.version) == (
            "Tempodrom",
            "Berlin",
            3500,
            1,
        )
        assert stored.created_by == "auth0|tester"
        assert stored.created_at.tzinfo is not None
        assert stored.created_at.utcoffset() == UTC.utcoffset(None)
        assert stored.created_at == created.created_at

    async def test_names_collide_ignoring_case_and_spaces(self, database: Database) -> None:
        await create(database, name="Tempodrom  Berlin")
        with pytest.raises(DuplicateVenue):
            await create(database, name=" tempodrom berlin", city="BERLIN")
        other_city = await create(database, name="Tempodrom Berlin", city="Hamburg")
        other_country = await create(
            database, name="Tempodrom Berlin", country="US", timezone="America/New_York"
        )
        assert other_city.id != other_country.id

    @pytest.mark.parametrize(
        "name", ["Tempo\u200bdrom", fullwidth("Tempodrom"), "\U0001d413empodrom"]
    )
    async def test_lookalike_names_collide_and_are_stored_normalised(
        self, database: Database, name: str
    ) -> None:
        await create(database)
        with pytest.raises(DuplicateVenue):
            await create(database, name=name)
        with pytest.raises(DuplicateVenue):
            await create(database, name=name.upper(), city="Ber\u00adlin")
        stored = await create(
            database, name=name, city=fullwidth("Hamburg"), address=fullwidth("X") + " 1"
        )
        assert (stored.name, stored.city, stored.address) == ("Tempodrom", "Hamburg", "X 1")
        assert (await read(database, stored.id)).name == "Tempodrom"

    async def test_concurrent_creates_of_one_name_store_one(self, database: Database) -> None:
        attempts = (create(database) for _ in range(3))
        results = await asyncio.gather(*attempts, return_exceptions=True)
        assert sum(isinstance(r, Venue) for r in results) == 1
        assert sum(isinstance(r, DuplicateVenue) for r in results) == 2


class TestPage:
    async def test_keyset_pages_cover_every_venue_once(self, database: Database) -> None:
        names = ["b", "A", "c", "a b", "Ä", "B2", "d"]
        for name in names:
            await create(database, name=name)
        seen: list[str] = []
        after: Cursor | None = None
        while True:
            async with database.sessions() as session:
                items, after = await VenueRepository(session).page(limit=2, after=after)
            seen += [v.name for v in items]
            if after is None:
                break
            # a cursor survives its trip through a URL
            after = Cursor.decode(after.encode())
        assert sorted(seen) == sorted(names)
        assert len(seen) == len(names)
        assert seen.index("A") < seen.index("a b") < seen.index("b") < seen.index("B2")

    async def test_a_venue_added_behind_the_cursor_does_not_shift_the_pages(
        self, database: Database
    ) -> None:
        for name in ("m1", "m2", "m3", "m4"):
            await create(database, name=name)
        async with database.sessions() as session:
            first, after = await VenueRepository(session).page(limit=2)
        await create(database, name="a-new-one")
        async with database.sessions() as session:
            second, _ = await VenueRepository(session).page(limit=2, after=after)
        assert [v.name for v in list(first) + list(second)] == ["m1", "m2", "m3", "m4"]

    async def test_filters_combine(self, database: Database) -> None:
        await create(database, name="Lido")
        await create(database, name="Lido", city="Hamburg")
        await create(database, name="Le Lido", city="Paris", country="FR", timezone="Europe/Paris")
        async with database.sessions() as session:
            repository = VenueRepository(session)
            by_city, _ = await repository.page(limit=10, city=" HAMBURG ")
            by_country, _ = await repository.page(limit=10, country="FR")
            by_name, _ = await repository.page(limit=10, name_contains="LIDO", country="DE")
        assert [v.city for v in by_city] == ["Hamburg"]
        assert [v.name for v in by_country] == ["Le Lido"]
        assert sorted(v.city for v in by_name) == ["Berlin", "Hamburg"]

    def test_a_cursor_not_issued_here_is_a_bad_request(self) -> None:
        with pytest.raises(BadRequest):
            Cursor.decode("WyJhIl0")  # ["a"]


class TestUpdate:
    async def test_only_the_expected_version_changes(self, database: Database) -> None:
        created = await create(database)
        updated = await update(database, created.id, 1, capacity=4000, city="Hamburg")
        assert (updated.capacity, updated.city, updated.version) == (4000, "Hamburg", 2)
        assert updated.updated_at > created.updated_at
        with pytest.raises(PreconditionFailed):
            await update(database, created.id, 1, capacity=1)
        assert (await read(database, created.id)).capacity == 4000

    async def test_concurrent_updates_from_one_version_have_one_winner(
        self, database: Database
    ) -> None:
        created = await create(database)
        capacities = [100, 200, 300, 400]
        results = await asyncio.gather(
            *(update(database, created.id, 1, capacity=c) for c in capacities),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Venue)]
        assert len(winners) == 1
        assert sum(isinstance(r, PreconditionFailed) for r in results) == 3
        stored = await read(database, created.id)
        assert (stored.capacity, stored.version) == (winners[0].capacity, 2)

    async def test_a_rename_onto_another_venue_conflicts_and_changes_nothing(
        self, database: Database
    ) -> None:
        await create(database)
        other = await create(database, name="Columbiahalle")
        with pytest.raises(DuplicateVenue):
            await update(database, other.id, 1, name="TEMPODROM")
        stored = await read(database, other.id)
        assert (stored.name, stored.version) == ("Columbiahalle", 1)

    async def test_unknown_venue(self, database: Database) -> None:
        with pytest.raises(VenueNotFound):
            await update(database, uuid.uuid4(), 1, capacity=1)


class TestDelete:
    async def test_delete_at_a_stale_version_keeps_the_venue(self, database: Database) -> None:
        created = await create(database)
        async with database.sessions() as session:
            repository = VenueRepository(session)
            with pytest.raises(PreconditionFailed):
                await repository.delete(created.id, expected=frozenset({2}))
            await repository.delete(created.id, expected=frozenset({1}))
            with pytest.raises(VenueNotFound):
                await repository.delete(created.id)
        with pytest.raises(VenueNotFound):
            await read(database, created.id)
