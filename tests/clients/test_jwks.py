"""The JWKS cache: cached keys, one rate-limited refetch on an unknown kid, single flight."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from app.clients.jwks import ISSUED_REFETCH_INTERVAL_S, JwksCache, UnknownKeyError
from app.http.errors import UpstreamUnavailable
from tests.tokens import JWKS, KID, OTHER_KID, OTHER_PRIVATE_KEY, jwks, public_jwk

CACHE_S = 600.0
INTERVAL_S = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeFetch:
    """Counts calls; answers ``result`` (or raises it), optionally after ``gate`` opens."""

    def __init__(self, result: dict[str, Any] | Exception = JWKS) -> None:
        self.result = result
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fetch() -> FakeFetch:
    return FakeFetch()


@pytest.fixture
def cache(fetch: FakeFetch, clock: FakeClock) -> JwksCache:
    return JwksCache(fetch, cache_s=CACHE_S, min_refetch_interval_s=INTERVAL_S, clock=clock)


ROTATED = jwks(public_jwk(), public_jwk(OTHER_PRIVATE_KEY, OTHER_KID))


class TestCache:
    async def test_first_lookup_fetches_then_hits_the_cache(
        self, cache: JwksCache, fetch: FakeFetch
    ) -> None:
        assert not cache.has_keys
        key = await cache.get_key(KID)
        again = await cache.get_key(KID)

        assert key is again
        assert (key.key_id, key.algorithm_name) == (KID, "RS256")
        assert fetch.calls == 1
        assert cache.has_keys

    async def test_refetched_after_cache_s(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        await cache.get_key(KID)
        clock.advance(CACHE_S - 1)
        await cache.get_key(KID)
        assert fetch.calls == 1
        clock.advance(1)
        await cache.get_key(KID)
        assert fetch.calls == 2

    async def test_warm(self, cache: JwksCache, fetch: FakeFetch) -> None:
        assert await cache.warm() is True
        assert await cache.warm() is True
        assert fetch.calls == 1
        assert cache.has_keys
        await cache.get_key(KID)
        assert fetch.calls == 1

    async def test_warm_never_raises(self, cache: JwksCache, fetch: FakeFetch) -> None:
        fetch.result = UpstreamUnavailable()
        assert await cache.warm() is False
        assert not cache.has_keys


class TestUnknownKid:
    async def test_one_refetch_finds_a_rotated_key(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        await cache.get_key(KID)
        fetch.result = ROTATED
        clock.advance(INTERVAL_S)

        key = await cache.get_key(OTHER_KID)

        assert key.key_id == OTHER_KID
        assert fetch.calls == 2

    async def test_still_unknown_after_exactly_one_refetch(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        await cache.get_key(KID)
        clock.advance(INTERVAL_S)
        with pytest.raises(UnknownKeyError):
            await cache.get_key("never-published")
        assert fetch.calls == 2

    async def test_a_flood_of_random_kids_makes_one_call_per_interval(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        await cache.get_key(KID)
        clock.advance(INTERVAL_S)
        for _ in range(200):
            with pytest.raises(UnknownKeyError):
                await cache.get_key(uuid.uuid4().hex)
            clock.advance(0.1)  # 20 s in all: still inside one interval
        assert fetch.calls == 2

        clock.advance(INTERVAL_S)
        with pytest.raises(UnknownKeyError):
            await cache.get_key(uuid.uuid4().hex)
        assert fetch.calls == 3

        # the known key never waits for, nor triggers, a refetch
        await cache.get_key(KID)
        assert fetch.calls == 3

    async def test_a_spray_cannot_starve_a_token_auth0_just_issued(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        await cache.get_key(KID)
        clock.advance(INTERVAL_S)
        for _ in range(50):  # made-up kids spend the allowance of presented tokens
            with pytest.raises(UnknownKeyError):
                await cache.get_key(uuid.uuid4().hex)
        assert fetch.calls == 2
        fetch.result = ROTATED  # Auth0 rotates; the gateway's own login gets a new-key token
        with pytest.raises(UnknownKeyError):
            await cache.get_key(OTHER_KID)  # a caller's token: still waits for the interval
        assert (await cache.get_key(OTHER_KID, cause="issued")).key_id == OTHER_KID
        assert fetch.calls == 3
        # the issued allowance is rate-limited too, on its own short interval
        with pytest.raises(UnknownKeyError):
            await cache.get_key("made-up", cause="issued")
        assert fetch.calls == 3
        clock.advance(ISSUED_REFETCH_INTERVAL_S)
        with pytest.raises(UnknownKeyError):
            await cache.get_key("made-up", cause="issued")
        assert fetch.calls == 4

    async def test_a_key_rotated_right_after_the_first_fetch_is_found(
        self, cache: JwksCache, fetch: FakeFetch
    ) -> None:
        # the scheduled fetch does not use up the unknown-kid refetch
        await cache.get_key(KID)
        fetch.result = ROTATED
        assert (await cache.get_key(OTHER_KID)).key_id == OTHER_KID
        assert fetch.calls == 2
        with pytest.raises(UnknownKeyError):
            await cache.get_key("random")
        assert fetch.calls == 2

    async def test_a_failed_refetch_keeps_the_keys_and_waits_an_interval(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        await cache.get_key(KID)
        fetch.result = UpstreamUnavailable()
        clock.advance(INTERVAL_S)
        with pytest.raises(UnknownKeyError):
            await cache.get_key("random-1")
        assert fetch.calls == 2
        clock.advance(INTERVAL_S - 1)
        with pytest.raises(UnknownKeyError):
            await cache.get_key("random-2")
        assert fetch.calls == 2
        assert (await cache.get_key(KID)).key_id == KID


class TestSingleFlight:
    async def test_concurrent_cold_lookups_coalesce(
        self, cache: JwksCache, fetch: FakeFetch
    ) -> None:
        fetch.gate = asyncio.Event()
        tasks = [asyncio.create_task(cache.get_key(KID)) for _ in range(50)]
        await asyncio.sleep(0)
        fetch.gate.set()

        keys = await asyncio.gather(*tasks)

        assert fetch.calls == 1
        assert {k.key_id for k in keys} == {KID}

    async def test_concurrent_unknown_kids_coalesce(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        await cache.get_key(KID)
        clock.advance(INTERVAL_S)
        fetch.result = ROTATED
        fetch.gate = asyncio.Event()
        kids = [OTHER_KID] * 10 + [uuid.uuid4().hex for _ in range(40)]
        tasks = [asyncio.create_task(cache.get_key(kid)) for kid in kids]
        await asyncio.sleep(0)
        fetch.gate.set()

        results = await asyncio.gather(*tasks, return_exceptions=True)

        assert fetch.calls == 2
        found = [r for r in results if not isinstance(r, BaseException)]
        assert [k.key_id for k in found] == [OTHER_KID] * 10
        assert all(isinstance(r, UnknownKeyError) for r in results[10:])

    async def test_known_kids_do_not_wait_for_a_stale_refresh(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        await cache.get_key(KID)
        clock.advance(CACHE_S)
        fetch.gate = asyncio.Event()
        refreshing = asyncio.create_task(cache.get_key(KID))
        await asyncio.sleep(0)
        assert fetch.calls == 2

        # while the refresh hangs, lookups of a known kid answer from the stale set
        assert (await asyncio.wait_for(cache.get_key(KID), timeout=1)).key_id == KID
        assert not refreshing.done()

        fetch.gate.set()
        assert (await refreshing).key_id == KID
        assert fetch.calls == 2

    async def test_a_cancelled_fetch_does_not_count(
        self, cache: JwksCache, fetch: FakeFetch
    ) -> None:
        fetch.gate = asyncio.Event()
        task = asyncio.create_task(cache.get_key(KID))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        fetch.gate.set()
        assert (await cache.get_key(KID)).key_id == KID
        assert fetch.calls == 2


class TestFailures:
    async def test_a_failed_refresh_keeps_serving_cached_keys(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        await cache.get_key(KID)
        fetch.result = UpstreamUnavailable()
        clock.advance(CACHE_S)

        assert (await cache.get_key(KID)).key_id == KID
        assert fetch.calls == 2

        # a stale set is served without a new attempt until the interval has passed
        clock.advance(INTERVAL_S - 1)
        await cache.get_key(KID)
        assert fetch.calls == 2
        clock.advance(1)
        await cache.get_key(KID)
        assert fetch.calls == 3

        fetch.result = ROTATED
        clock.advance(INTERVAL_S)
        assert (await cache.get_key(OTHER_KID)).key_id == OTHER_KID
        assert fetch.calls == 4

    @pytest.mark.parametrize(
        "document",
        [
            {"keys": []},
            {"no": "keys"},
            {"keys": "nope"},
            {"keys": [{"kty": "oct", "kid": KID, "k": "c2VjcmV0"}]},
        ],
    )
    async def test_a_useless_document_keeps_the_cached_keys(
        self,
        cache: JwksCache,
        fetch: FakeFetch,
        clock: FakeClock,
        document: dict[str, Any],
    ) -> None:
        await cache.get_key(KID)
        fetch.result = document
        clock.advance(CACHE_S)
        assert (await cache.get_key(KID)).key_id == KID
        assert fetch.calls == 2

    async def test_nothing_cached_is_unavailable_and_rate_limited(
        self, cache: JwksCache, fetch: FakeFetch, clock: FakeClock
    ) -> None:
        fetch.result = RuntimeError("connection refused")

        with pytest.raises(UpstreamUnavailable) as caught:
            await cache.get_key(KID)
        assert caught.value.status_code == 503
        assert 1 <= int(caught.value.headers["Retry-After"]) <= INTERVAL_S

        clock.advance(5)
        with pytest.raises(UpstreamUnavailable):
            await cache.get_key(KID)
        assert fetch.calls == 1

        fetch.result = JWKS
        clock.advance(INTERVAL_S)
        assert (await cache.get_key(KID)).key_id == KID
        assert fetch.calls == 2


class TestKeyFiltering:
    async def test_only_rs256_signature_keys_are_used(self, clock: FakeClock) -> None:
        good = public_jwk(kid="good")
        no_alg = public_jwk(kid="no-alg", alg=None)  # tenant flag remove_alg_from_jwks
        no_use = {k: v for k, v in public_jwk(kid="no-use").items() if k != "use"}
        document = jwks(
            good,
            no_alg,
            no_use,
            {**public_jwk(kid="enc"), "use": "enc"},
            {**public_jwk(kid="rs512"), "alg": "RS512"},
            {**public_jwk(kid="hs256"), "alg": "HS256"},
            {"kty": "oct", "kid": "oct", "k": "c2VjcmV0", "alg": "HS256"},
            {**public_jwk(kid="broken"), "n": "!!!"},
            {k: v for k, v in public_jwk().items() if k != "kid"},
        )
        fetch = FakeFetch(document)
        cache = JwksCache(fetch, CACHE_S, INTERVAL_S, clock=clock)

        for kid in ("good", "no-alg", "no-use"):
            key = await cache.get_key(kid)
            assert key.algorithm_name == "RS256"
        for kid in ("enc", "rs512", "hs256", "oct", "broken"):
            with pytest.raises(UnknownKeyError):
                await cache.get_key(kid)
        assert fetch.calls == 2  # the first unknown kid refetched once, then rate-limited
