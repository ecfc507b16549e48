"""The session store on SQLite and on PostgreSQL: sessions, lineage, leases, revocations."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from app.auth.cipher import SessionCipher
from app.auth.models import AuthSession
from app.auth.revocations import RevocationList
from app.auth.sessions import LoginRevoked, SessionStore
from app.cache import secret_digest
from app.db.engine import Database, create_engine
from app.http.errors import SessionStoreUnavailable
from app.services import notify_channel
from settings import DatabaseSettings

REFRESH = "v1.MRrt-refresh-token-that-must-never-leak-0123456789"
SUB = "auth0|alice"


@pytest.fixture
def store(database: Database) -> SessionStore:
    """A store on the test's database (SQLite and PostgreSQL), one-hour sessions."""
    return SessionStore(
        database.engine,
        SessionCipher.ephemeral(),
        lifetime_s=3_600,
        notify_channel=notify_channel("test"),
    )


async def start(store: SessionStore, token: str, *, sub: str = SUB, refresh: str = REFRESH) -> None:
    """A session whose first access token is ``token``."""
    now = int(time.time())
    replaced = await store.start(
        sub=sub,
        refresh_token=SecretStr(refresh),
        access_token=token,
        issued_at=now,
        expires_at=now + 600,
    )
    assert replaced == []


async def move(
    store: SessionStore, session_id: str, owner: str, old: str, new: str, answer: bytes = b"{}"
) -> tuple[str, list[SecretStr]]:
    """Complete a refresh of ``old`` to ``new`` as ``owner``; the store's outcome."""
    now = int(time.time())
    outcome, replaced = await store.complete_refresh(
        session_id=session_id,
        owner=owner,
        old_token=old,
        new_token=new,
        issued_at=now,
        expires_at=now + 600,
        answer=answer,
    )
    return outcome, replaced


async def refresh(store: SessionStore, old: str, new: str) -> None:
    """Move ``old``'s session to ``new`` as a refresh does."""
    claimed = await store.claim_refresh(old, "me", 10)
    assert claimed is not None
    outcome, replaced = await move(
        store, claimed.session_id, "me", old, new, b'{"access_token": "%s"}' % new.encode()
    )
    assert (outcome, replaced) == ("moved", [])


class TestSessions:
    async def test_the_refresh_token_is_kept_encrypted(
        self, store: SessionStore, database: Database
    ) -> None:
        await start(store, "token-1")
        found = await store.find("token-1")
        assert found is not None
        assert found.refresh_token.get_secret_value() == REFRESH
        assert found.sub == SUB
        assert not found.ended
        async with database.engine.connect() as conn:
            stored = (await conn.execute(select(AuthSession.refresh_token))).scalar_one()
        assert REFRESH.encode() not in stored
        assert await store.find("token-2") is None

    async def test_an_identical_token_replaces_the_earlier_session(
        self, store: SessionStore
    ) -> None:
        await start(store, "same")
        now = int(time.time())
        replaced = await store.start(
            sub=SUB,
            refresh_token=SecretStr("second-refresh"),
            access_token="same",
            issued_at=now,
            expires_at=now + 600,
        )
        assert [r.get_secret_value() for r in replaced] == [REFRESH]
        found = await store.find("same")
        assert found is not None
        assert found.refresh_token.get_secret_value() == "second-refresh"


class TestRefreshLease:
    async def test_one_holder_at_a_time(self, store: SessionStore) -> None:
        await start(store, "t1")
        first, second = await asyncio.gather(
            store.claim_refresh("t1", "a", 10), store.claim_refresh("t1", "b", 10)
        )
        assert (first is None) != (second is None)
        holder = "a" if first is not None else "b"
        session_id = (first or second).session_id  # type: ignore[union-attr]
        await store.release_refresh(session_id, holder)
        assert await store.claim_refresh("t1", "c", 10) is not None

    async def test_lineage_and_the_grace_answer(self, store: SessionStore) -> None:
        await start(store, "t1")
        await refresh(store, "t1", "t2")
        old = await store.find("t1")
        assert old is not None
        assert old.refreshed_at is not None
        assert old.successor == b'{"access_token": "t2"}'
        # only the current token may be refreshed
        assert await store.claim_refresh("t1", "x", 10) is None
        assert await store.claim_refresh("t2", "x", 10) is not None

    async def test_a_refresh_that_loses_to_a_logout_moves_nothing(
        self, store: SessionStore
    ) -> None:
        await start(store, "t1")
        claimed = await store.claim_refresh("t1", "me", 10)
        assert claimed is not None
        await store.end_chain("t1", sub=SUB, expires_at=int(time.time()) + 600)
        outcome, _ = await move(store, claimed.session_id, "me", "t1", "t2")
        assert outcome == "ended"
        assert await store.find("t2") is None


class TestRevocations:
    async def test_a_logout_with_any_token_ends_the_chain(self, store: SessionStore) -> None:
        await start(store, "t1")
        await refresh(store, "t1", "t2")
        await refresh(store, "t2", "t3")
        ended = await store.end_chain("t1", sub=SUB, expires_at=int(time.time()) + 600)
        assert [r.get_secret_value() for r in ended.refresh_tokens] == [REFRESH]
        found = await store.find("t3")
        assert found is not None
        assert found.ended
        for token in ("t1", "t2", "t3"):
            assert await store.is_revoked(secret_digest(token), SUB, int(time.time()))
        assert not await store.is_revoked(secret_digest("t4"), SUB, int(time.time()))

    async def test_a_token_without_a_session_is_denied_too(self, store: SessionStore) -> None:
        ended = await store.end_chain("direct", sub=SUB, expires_at=int(time.time()) + 60)
        assert ended.refresh_tokens == []
        assert await store.is_revoked(secret_digest("direct"), SUB, None)

    async def test_every_session_of_a_user_ends_however_many(self, store: SessionStore) -> None:
        for i in range(100):
            await start(store, f"t{i}", refresh=f"r{i}")
        await start(store, "bob", sub="auth0|bob")
        ended = await store.end_user_sessions(SUB, keep="t7", reason="password_change")
        assert len(ended.refresh_tokens) == 99
        assert await store.count_live_sessions(SUB) == 1
        assert await store.count_live_sessions("auth0|bob") == 1
        assert await store.is_revoked(secret_digest("t8"), SUB, int(time.time()))
        assert not await store.is_revoked(secret_digest("t7"), SUB, int(time.time()))

    async def test_a_cutoff_denies_what_was_issued_before_it(self, store: SessionStore) -> None:
        await start(store, "t1")
        await store.end_user_sessions(SUB, cutoff=True, reason="user_blocked")
        now = int(time.time())
        assert await store.is_revoked(secret_digest("elsewhere"), SUB, now - 5)
        assert not await store.is_revoked(secret_digest("later"), SUB, now + 1)
        assert not await store.is_revoked(secret_digest("elsewhere"), "auth0|bob", now - 5)

    async def test_prune_removes_what_no_longer_matters(self, database: Database) -> None:
        clock = [time.time()]
        store = SessionStore(
            database.engine, SessionCipher.ephemeral(), lifetime_s=60, clock=lambda: clock[0]
        )
        await start(store, "t1")
        await store.end_chain("t1", sub=SUB, expires_at=int(clock[0]) + 30)
        assert (await store.prune()).sessions == 0
        clock[0] += 90_000
        pruned = await store.prune()
        assert (pruned.sessions, pruned.tokens, pruned.revocations) == (1, 1, 1)


class TestRevocationList:
    async def test_a_worker_learns_of_another_ones_logout(self, store: SessionStore) -> None:
        heard: list[str | None] = []
        revocations = RevocationList(store, sync_interval_s=60)
        revocations.on_revoked(lambda entry: heard.append(entry.token_hash))
        await revocations.sync()
        await store.end_chain("t1", sub=SUB, expires_at=int(time.time()) + 60)
        assert not revocations.denies(secret_digest("t1"), SUB, None)
        await revocations.sync()
        assert revocations.denies(secret_digest("t1"), SUB, None)
        await revocations.sync()  # applying a row twice changes nothing
        assert heard == [secret_digest("t1")]

    async def test_postgres_notify_wakes_every_worker_at_once(
        self, postgres_module_database: str
    ) -> None:
        # SQLite workers poll; PostgreSQL's NOTIFY tells them at once (the poll is 60 s here)
        database_url = postgres_module_database
        async with AsyncExitStack() as stack:
            engine = create_engine(DatabaseSettings(url=database_url))
            stack.push_async_callback(engine.dispose)
            store = SessionStore(
                engine,
                SessionCipher.ephemeral(),
                lifetime_s=3_600,
                notify_channel=notify_channel("test"),
            )
            revocations = RevocationList(store, sync_interval_s=60)
            await revocations.start(stack, listen_url=database_url)
            await asyncio.sleep(0.5)  # the listener connects
            await store.end_chain("t1", sub=SUB, expires_at=int(time.time()) + 60)
            for _ in range(50):
                if revocations.denies(secret_digest("t1"), SUB, None):
                    break
                await asyncio.sleep(0.05)
            assert revocations.denies(secret_digest("t1"), SUB, None)


class TestUnreachable:
    async def test_an_unreachable_database_is_503_not_a_crash(self) -> None:
        engine = create_engine(
            DatabaseSettings(url="postgresql+asyncpg://nobody@127.0.0.1:9/none", timeout_s=1)
        )
        store = SessionStore(engine, SessionCipher.ephemeral(), lifetime_s=60, timeout_s=1)
        try:
            with pytest.raises(SessionStoreUnavailable):
                await store.find("t1")
            with pytest.raises(SessionStoreUnavailable):
                await store.end_chain("t1", sub=SUB, expires_at=int(time.time()) + 60)
        finally:
            await engine.dispose()


class TestFromTheReview:
    async def test_a_lapsed_lease_is_lost_not_ended(self, store: SessionStore) -> None:
        await start(store, "t1")
        first = await store.claim_refresh("t1", "slow", 1)
        assert first is not None
        await asyncio.sleep(2.1)  # the lease (1 s, on the database's clock) lapses
        second = await store.claim_refresh("t1", "fast", 10)
        assert second is not None
        assert not await store.keep_rotated(first.session_id, "slow", SecretStr("rotated"))
        outcome, _ = await move(store, first.session_id, "slow", "t1", "t2")
        assert outcome == "lost"
        found = await store.find("t1")
        assert found is not None
        assert not found.ended
        assert found.refresh_token.get_secret_value() == REFRESH

    async def test_a_replica_whose_clock_runs_behind_is_not_missed(
        self, store: SessionStore, database: Database
    ) -> None:
        revocations = RevocationList(store, sync_interval_s=60)
        await revocations.sync()
        behind = SessionStore(
            database.engine,
            SessionCipher.ephemeral(),
            lifetime_s=3_600,
            clock=lambda: time.time() - 90,
        )
        await behind.end_chain("t1", sub=SUB, expires_at=int(time.time()) + 600)
        await revocations.sync()
        assert revocations.denies(secret_digest("t1"), SUB, None)

    async def test_a_password_change_denies_tokens_of_sessions_already_ended(
        self, store: SessionStore
    ) -> None:
        await start(store, "t1")
        found = await store.find("t1")
        assert found is not None
        await store.end_session(found.session_id, "refresh_rejected")
        await start(store, "mine")
        await store.end_user_sessions(SUB, keep="mine", reason="password_change")
        assert await store.is_revoked(secret_digest("t1"), SUB, int(time.time()))
        assert not await store.is_revoked(secret_digest("mine"), SUB, int(time.time()))

    async def test_prune_keeps_a_session_while_a_token_of_it_can_be_used(
        self, database: Database
    ) -> None:
        clock = [time.time()]
        store = SessionStore(
            database.engine, SessionCipher.ephemeral(), lifetime_s=60, clock=lambda: clock[0]
        )
        await start(store, "t1")  # its token lives 600 s, the session 60 s
        clock[0] += 120
        assert (await store.prune()).sessions == 0
        await store.end_user_sessions(SUB, reason="password_change")
        assert await store.is_revoked(secret_digest("t1"), SUB, None)
        clock[0] += 600
        assert (await store.prune()).sessions == 1

    async def test_ending_many_sessions_commits_in_batches(
        self, store: SessionStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("app.auth.sessions._END_BATCH", 7)
        for i in range(20):
            await start(store, f"t{i}", refresh=f"r{i}")
        ended = await store.end_user_sessions(SUB, cutoff=True, reason="user_blocked")
        assert len(ended.refresh_tokens) == 20
        assert await store.count_live_sessions(SUB) == 0
        assert await store.is_revoked(secret_digest("t19"), SUB, int(time.time()) + 60)

    async def test_a_revocation_outlives_the_expiry_leeway(self, database: Database) -> None:
        store = SessionStore(database.engine, SessionCipher.ephemeral(), lifetime_s=60, leeway_s=10)
        # expired 5 s ago, still accepted for 5 s more by a validator with 10 s of leeway
        await store.end_chain("t1", sub=SUB, expires_at=int(time.time()) - 5)
        assert await store.is_revoked(secret_digest("t1"), SUB, None)
        revocations = RevocationList(store, sync_interval_s=60)
        await revocations.sync()
        assert revocations.denies(secret_digest("t1"), SUB, None)

    async def test_a_refresh_that_mints_a_token_of_another_session_ends_that_session(
        self, store: SessionStore
    ) -> None:
        await start(store, "t1", refresh="r1")
        await start(store, "t2", refresh="r2")  # a login that got the very token t1 refreshes to
        claimed = await store.claim_refresh("t1", "me", 10)
        assert claimed is not None
        outcome, replaced = await move(store, claimed.session_id, "me", "t1", "t2")
        assert outcome == "moved"
        assert [r.get_secret_value() for r in replaced] == ["r2"]
        assert await store.count_live_sessions(SUB) == 1

    async def test_a_login_that_gets_a_logged_out_token_is_refused(
        self, store: SessionStore
    ) -> None:
        await store.end_chain("same", sub=SUB, expires_at=int(time.time()) + 60)
        now = int(time.time())
        with pytest.raises(LoginRevoked):
            await store.start(
                sub=SUB,
                refresh_token=SecretStr("r"),
                access_token="same",
                issued_at=now,
                expires_at=now + 60,
            )
