"""Each process's copy of the revocations in force, kept in step with the database.

A cached principal is served without asking the database (the hot path makes no round trip), so
every worker must learn of a logout, a block or a password change by itself: it reads the new
rows every ``sync_interval_s`` and, with PostgreSQL, as soon as a ``NOTIFY`` says there are new
ones. Each new revocation is handed to the listeners (the principal resolver drops the entries it
denies from the in-process tier) and checked on every memcached hit.

Rows are read by ``created_at``, which the database's clock stamps, from the database's clock
at the previous read less an overlap of :data:`OVERLAP_S`, so a transaction that committed late
is not missed and the replicas' own clocks do not matter; applying a row twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

from sqlalchemy.engine import make_url

from app.auth.sessions import RevocationEntry, SessionStore
from app.http.errors import SessionStoreUnavailable

log = logging.getLogger(__name__)

OVERLAP_S = 60
_WARN_EVERY_S = 60.0
_STOP_WAIT_S = 10.0
"""At shutdown, how long the sync loop may take to finish the read it is in."""

Listener = Callable[[RevocationEntry], object]


class RevocationList:
    """The revocations in force, as this process last read them."""

    def __init__(
        self,
        store: SessionStore,
        *,
        sync_interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.sync_interval_s = sync_interval_s
        self._clock = clock
        self._tokens: dict[str, int] = {}
        self._cutoffs: dict[str, tuple[int, int]] = {}
        self._listeners: list[Listener] = []
        self._cursor: int | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_warning = -_WARN_EVERY_S
        self.synced_at: float | None = None

    def __len__(self) -> int:
        return len(self._tokens) + len(self._cutoffs)

    def on_revoked(self, listener: Listener) -> None:
        """Call ``listener`` with every revocation this process learns of."""
        self._listeners.append(listener)

    def denies(self, token_hash: str, sub: str, issued_at: int | None) -> bool:
        """True when the token is revoked or was issued before its user's cut-off."""
        if token_hash in self._tokens:
            return True
        cutoff = self._cutoffs.get(sub)
        return cutoff is not None and (issued_at or 0) < cutoff[0]

    def add(self, entry: RevocationEntry) -> None:
        """Apply one revocation (from this process or the database); listeners hear of new ones."""
        if entry.token_hash is not None:
            if entry.token_hash in self._tokens:
                return
            self._tokens[entry.token_hash] = entry.expires_at
        elif entry.sub is not None and entry.issued_before is not None:
            known = self._cutoffs.get(entry.sub)
            if known is not None and known[0] >= entry.issued_before:
                return
            self._cutoffs[entry.sub] = (entry.issued_before, entry.expires_at)
        else:
            return
        for listener in self._listeners:
            listener(entry)

    def wake(self) -> None:
        """Read the database now (a ``NOTIFY`` arrived)."""
        self._wake.set()

    async def sync(self) -> int:
        """Read what is new since the last read; how many rows were read.

        Raises :class:`SessionStoreUnavailable` when the database does not answer.
        """
        since = None if self._cursor is None else self._cursor - OVERLAP_S
        entries, clock = await self._store.revocations_since(since)
        for entry in entries:
            self.add(entry)
        self._cursor = clock
        self.synced_at = time.monotonic()
        self._forget_expired(int(self._clock()))
        return len(entries)

    @property
    def loaded(self) -> bool:
        """True once the revocations in force have been read at least once."""
        return self.synced_at is not None

    async def run(self) -> None:
        """Keep in step until stopped: every ``sync_interval_s``, and on :meth:`wake`."""
        while not self._stopping:
            try:
                await self.sync()
            except Exception as exc:  # the loop must outlive any failure, or logouts stop arriving
                now = time.monotonic()
                if now - self._last_warning >= _WARN_EVERY_S:
                    self._last_warning = now
                    level = logging.WARNING
                    if not isinstance(exc, SessionStoreUnavailable):
                        level = logging.ERROR
                    log.log(
                        level,
                        "revocations could not be read (%s); logouts recorded elsewhere reach "
                        "this process when it succeeds again",
                        type(exc).__name__,
                    )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.sync_interval_s):
                    await self._wake.wait()
            self._wake.clear()

    async def start(self, stack: AsyncExitStack, *, listen_url: str | None = None) -> None:
        """Load what is in force, then keep in step in the background until ``stack`` closes.

        ``listen_url`` (PostgreSQL) also listens for ``NOTIFY`` on the store's channel.
        """
        try:
            await self.sync()
        except SessionStoreUnavailable:
            log.warning("revocations could not be loaded at start-up; retrying in the background")
        tasks = [asyncio.create_task(self.run(), name="revocation-sync")]
        if listen_url is not None and self._store.notify_channel is not None:
            tasks.append(
                asyncio.create_task(
                    listen(listen_url, self._store.notify_channel, self.wake),
                    name="revocation-listen",
                )
            )

        async def stop() -> None:
            # The sync loop is let finish its read rather than cancelled inside it: a task
            # cancelled while SQLAlchemy checks a connection out or in can lose the connection.
            self._stopping = True
            self.wake()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_STOP_WAIT_S):  # the read is bounded by the store
                    await asyncio.shield(tasks[0])
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        stack.push_async_callback(stop)

    def _forget_expired(self, now: int) -> None:
        self._tokens = {h: exp for h, exp in self._tokens.items() if exp > now}
        self._cutoffs = {s: c for s, c in self._cutoffs.items() if c[1] > now}


async def listen(database_url: str, channel: str, on_notify: Callable[[], None]) -> None:
    """``LISTEN`` on ``channel`` with a connection of its own until cancelled; reconnects.

    Every notification, and every (re)connection (notifications may have been missed while
    disconnected), calls ``on_notify``.
    """
    import asyncpg  # PostgreSQL only; SQLite deployments never import it

    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    delay = 1.0
    while True:
        connection = None
        try:
            connection = await asyncpg.connect(dsn, timeout=5)
            lost = asyncio.Event()
            connection.add_termination_listener(_setter(lost))
            await connection.add_listener(channel, lambda *_: on_notify())
            on_notify()
            delay = 1.0
            while not lost.is_set():
                # a quiet TCP connection can die unnoticed: ask it something now and then
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30):
                        await lost.wait()
                if not lost.is_set():
                    await connection.execute("SELECT 1", timeout=5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: reconnect after a pause
            # polling still runs: a lost listener only delays logouts to the sync interval
            log.warning(
                "revocation listener disconnected (%s); reconnecting, polling meanwhile",
                type(exc).__name__,
            )
        finally:
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


def _setter(event: asyncio.Event) -> Callable[..., None]:
    def set_event(*_: object) -> None:
        event.set()

    return set_event
