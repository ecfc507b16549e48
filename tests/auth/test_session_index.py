"""The per-user index of session access tokens: recorded, moved on refresh, pruned, encrypted."""

from __future__ import annotations

import asyncio
import time

from app.auth.session_index import UserSessionIndex
from app.auth.sessions import SessionCipher
from app.cache import MemcachedCache, MemoryCache, cache_key
from tests.servers import MemcachedProcess

NOW = 1_800_000_000


def index(
    cache: MemoryCache | MemcachedCache, clock: list[float], **kwargs: int
) -> UserSessionIndex:
    return UserSessionIndex(
        cache, "t-index", SessionCipher.ephemeral(), clock=lambda: clock[0], **kwargs
    )


async def tokens(idx: UserSessionIndex, sub: str = "auth0|u") -> list[str]:
    return [e.access_token for e in await idx.entries(sub)]


class TestIndex:
    async def test_records_each_login_and_keeps_only_what_is_asked(self) -> None:
        idx = index(MemoryCache(), [NOW])
        for token in ("a", "b", "c"):
            await idx.record("auth0|u", token, expires_at=NOW + 3600, session_until=NOW + 86400)
        await idx.record("auth0|other", "z", expires_at=NOW + 3600, session_until=NOW + 86400)
        assert await tokens(idx) == ["a", "b", "c"]
        await idx.keep_only("auth0|u", "b")
        assert await tokens(idx) == ["b"]
        await idx.keep_only("auth0|u", None)
        assert await tokens(idx) == []
        assert await tokens(idx, "auth0|other") == ["z"]

    async def test_a_refreshed_token_lives_on_only_until_its_exp(self) -> None:
        clock = [float(NOW)]
        idx = index(MemoryCache(), clock)
        await idx.record("auth0|u", "old", expires_at=NOW + 3600, session_until=NOW + 86400)
        await idx.record(
            "auth0|u", "new", expires_at=NOW + 7200, session_until=NOW + 86400, replaces="old"
        )
        assert await tokens(idx) == ["old", "new"]
        clock[0] = NOW + 3601
        assert await tokens(idx) == ["new"]

    async def test_bounded_per_user(self) -> None:
        idx = index(MemoryCache(), [NOW], max_entries=3)
        for n in range(5):
            await idx.record("auth0|u", f"t{n}", expires_at=NOW + 60, session_until=NOW + 60)
        assert await tokens(idx) == ["t2", "t3", "t4"]

    async def test_stored_encrypted(self) -> None:
        cache = MemoryCache()
        idx = index(cache, [NOW])
        await idx.record("auth0|u", "eyJ.secret", expires_at=NOW + 60, session_until=NOW + 60)
        stored = await cache.get(cache_key("t-index", "user-sessions", "auth0|u"))
        assert stored is not None
        assert b"secret" not in stored

    async def test_concurrent_logins_through_two_workers_are_all_kept(
        self, memcached_server: MemcachedProcess
    ) -> None:
        first = MemcachedCache.from_url(memcached_server.url)
        second = MemcachedCache.from_url(memcached_server.url)
        cipher = SessionCipher.ephemeral()
        soon = int(time.time()) + 3600
        try:
            workers = [UserSessionIndex(c, "t-index-race", cipher) for c in (first, second)]
            await asyncio.gather(
                *(
                    workers[n % 2].record(
                        "auth0|race", f"t{n}", expires_at=soon, session_until=soon
                    )
                    for n in range(10)
                )
            )
            assert sorted(await tokens(workers[0], "auth0|race")) == sorted(
                f"t{n}" for n in range(10)
            )
        finally:
            await first.close()
            await second.close()
