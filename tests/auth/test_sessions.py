"""Sessions: refresh tokens encrypted under the access token's hash, grace and logout records."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from app.auth.sessions import Session, SessionCipher, SessionStore, generate_key
from app.cache import MemcachedCache, MemoryCache, cache_key
from settings.model import SessionSettings
from tests.servers import MemcachedProcess

ACCESS = "eyJhbGciOiJSUzI1NiJ9." + "a" * 900 + ".sig"
REFRESH = "v1.MRrt-refresh-token-that-must-never-leak-0123456789"
DAY_S = 86_400


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own on the shared memcached."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", "memcached"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[MemoryCache | MemcachedCache]:
    """Each store the sessions may live in."""
    if request.param == "memory":
        yield MemoryCache()
        return
    server: MemcachedProcess = request.getfixturevalue("memcached_server")
    memcached = MemcachedCache.from_url(server.url, timeout_s=1.0)
    yield memcached
    await memcached.close()


def make_store(
    cache: MemoryCache | MemcachedCache, ns: str, cipher: SessionCipher, lifetime_s: int = 3_600
) -> SessionStore:
    """A store with a one-hour session lifetime and a 30-second grace period."""
    return SessionStore(cache, ns, cipher, lifetime_s=lifetime_s, grace_s=30)


class TestSession:
    def test_repr_and_dumps_hide_the_refresh_token(self) -> None:
        session = Session(
            refresh_token=SecretStr(REFRESH), sub="auth0|alice", created_at=1, expires_at=2
        )

        for text in (repr(session), str(session), session.model_dump_json()):
            assert REFRESH not in text
        assert session.refresh_token.get_secret_value() == REFRESH


class TestSessionCipher:
    def test_round_trip_with_a_generated_key(self) -> None:
        cipher = SessionCipher([generate_key()])

        token = cipher.encrypt(b"secret")

        assert b"secret" not in token
        assert cipher.decrypt(token) == b"secret"
        assert not cipher.is_ephemeral

    def test_wrong_key_or_tampering_decrypts_to_none(self) -> None:
        token = SessionCipher([generate_key()]).encrypt(b"secret")

        assert SessionCipher([generate_key()]).decrypt(token) is None
        assert SessionCipher([generate_key()]).decrypt(b"not a fernet token") is None

    def test_refuses_no_keys_and_bad_keys_without_echoing_them(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            SessionCipher([])
        with pytest.raises(ValueError, match="#2") as raised:
            SessionCipher([generate_key(), SecretStr("hunter2-not-a-key")])
        assert "hunter2" not in str(raised.value)

    def test_keys_from_settings(self) -> None:
        key = generate_key()
        settings = SessionSettings.model_validate({"keys": f"{key},{generate_key()}"})

        cipher = SessionCipher.from_settings(settings)

        assert SessionCipher([key]).decrypt(cipher.encrypt(b"x")) == b"x"

    def test_ephemeral_only_when_allowed(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            SessionCipher.from_settings(SessionSettings())

        cipher = SessionCipher.from_settings(SessionSettings(), allow_ephemeral=True)

        assert cipher.is_ephemeral
        assert cipher.decrypt(cipher.encrypt(b"x")) == b"x"
        assert not SessionCipher.from_settings(
            SessionSettings(keys=[SecretStr(generate_key())]), allow_ephemeral=True
        ).is_ephemeral


class TestSessionStore:
    async def test_round_trip_and_delete(
        self, cache: MemoryCache | MemcachedCache, ns: str
    ) -> None:
        store = make_store(cache, ns, SessionCipher.ephemeral())
        session = store.new_session(REFRESH, "auth0|alice")

        assert await store.save(ACCESS, session) is True
        loaded = await store.load(ACCESS)

        assert loaded == session
        assert loaded is not None
        assert loaded.refresh_token.get_secret_value() == REFRESH
        assert session.expires_at - session.created_at == 3_600
        assert await store.load(ACCESS + "x") is None
        await store.delete(ACCESS)
        assert await store.load(ACCESS) is None

    async def test_stored_record_is_ciphertext(
        self, cache: MemoryCache | MemcachedCache, ns: str
    ) -> None:
        store = make_store(cache, ns, SessionCipher.ephemeral())
        await store.save(ACCESS, store.new_session(REFRESH, "auth0|alice"))

        raw = await cache.get(cache_key(ns, "session", ACCESS))

        assert raw is not None
        assert REFRESH.encode() not in raw
        assert b"auth0|alice" not in raw
        assert b"MRrt" not in raw

    async def test_memcached_keys_hold_no_token(
        self, memcached_server: MemcachedProcess, ns: str
    ) -> None:
        cache = MemcachedCache.from_url(memcached_server.url, timeout_s=1.0)
        store = make_store(cache, ns, SessionCipher.ephemeral())
        try:
            await store.save(ACCESS, store.new_session(REFRESH, "auth0|alice"))
            await store.put_grace(ACCESS, b"new-access-token")
            await store.mark_revoked(ACCESS, int(time.time()) + 60)
        finally:
            await cache.close()

        stored = memcached_server.keys()
        ours = sorted(key for key in stored if key.startswith(f"{ns}:"))
        assert [key.split(":")[1] for key in ours] == ["grace", "revoked", "session"]
        for key in ours:
            assert len(key) <= 250
            assert "eyJ" not in key
            assert "MRrt" not in key

    async def test_key_rotation(self, cache: MemoryCache | MemcachedCache, ns: str) -> None:
        old_key, new_key = generate_key(), generate_key()
        before = make_store(cache, ns, SessionCipher([old_key]))
        after = make_store(cache, ns, SessionCipher([new_key, old_key]))
        await before.save("old-access", before.new_session("old-refresh", "auth0|alice"))

        old_session = await after.load("old-access")
        await after.save("new-access", after.new_session("new-refresh", "auth0|alice"))

        assert old_session is not None
        assert old_session.refresh_token.get_secret_value() == "old-refresh"
        assert await make_store(cache, ns, SessionCipher([new_key])).load("new-access")
        assert await before.load("new-access") is None

    async def test_unknown_key_reads_as_absent_and_logs_no_content(
        self, cache: MemoryCache | MemcachedCache, ns: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        writer = make_store(cache, ns, SessionCipher.ephemeral())
        await writer.save(ACCESS, writer.new_session(REFRESH, "auth0|alice"))
        caplog.set_level(logging.DEBUG)

        assert await make_store(cache, ns, SessionCipher.ephemeral()).load(ACCESS) is None

        assert "did not decrypt" in caplog.text
        assert REFRESH not in caplog.text
        assert "eyJ" not in caplog.text

    async def test_expired_session_is_neither_stored_nor_served(
        self, cache: MemoryCache | MemcachedCache, ns: str
    ) -> None:
        store = make_store(cache, ns, SessionCipher.ephemeral())
        now = int(time.time())
        expired = store.new_session(REFRESH, "auth0|alice", now=now - 7_200)

        assert await store.save(ACCESS, expired) is False
        assert await store.load(ACCESS) is None

    async def test_session_beyond_thirty_days(
        self, cache: MemoryCache | MemcachedCache, ns: str
    ) -> None:
        store = make_store(cache, ns, SessionCipher.ephemeral(), lifetime_s=90 * DAY_S)
        session = store.new_session(REFRESH, "auth0|alice")

        assert await store.save(ACCESS, session) is True
        assert await store.load(ACCESS) == session

    async def test_grace_record(self, cache: MemoryCache | MemcachedCache, ns: str) -> None:
        store = make_store(cache, ns, SessionCipher.ephemeral())
        payload = b'{"access_token":"the-new-access-token","expires_in":86400}'

        assert await store.get_grace(ACCESS) is None
        assert await store.put_grace(ACCESS, payload) is True

        assert await store.get_grace(ACCESS) == payload
        raw = await cache.get(cache_key(ns, "grace", ACCESS))
        assert raw is not None
        assert b"the-new-access-token" not in raw
        assert await store.put_grace("other", payload, ttl_s=0) is False
        assert await store.get_grace("other") is None

    async def test_revocation_marker(self, cache: MemoryCache | MemcachedCache, ns: str) -> None:
        store = make_store(cache, ns, SessionCipher.ephemeral())
        now = int(time.time())

        assert await store.is_revoked(ACCESS) is False
        assert await store.mark_revoked(ACCESS, now + 60) is True
        assert await store.mark_revoked("already-expired", now - 1) is False

        assert await store.is_revoked(ACCESS) is True
        assert await store.is_revoked(ACCESS + "x") is False
        assert await store.is_revoked("already-expired") is False

    async def test_killed_memcached_means_no_session(
        self, memcached: MemcachedProcess, ns: str
    ) -> None:
        cache = MemcachedCache.from_url(memcached.url, timeout_s=0.25)
        store = make_store(cache, ns, SessionCipher.ephemeral())
        try:
            await store.save(ACCESS, store.new_session(REFRESH, "auth0|alice"))
            memcached.stop()

            assert await store.load(ACCESS) is None
            assert await store.save(ACCESS, store.new_session(REFRESH, "auth0|alice")) is False
            assert await store.is_revoked(ACCESS) is False
            await store.delete(ACCESS)
        finally:
            await cache.close()
