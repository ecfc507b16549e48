"""A throw-away PostgreSQL server for tests, and a fresh database on it per test.

``PostgresProcess`` runs Debian's ``initdb`` into a temporary directory and ``postgres`` on a free
loopback port, as the ``postgres`` system user when the tests run as root (PostgreSQL refuses to
run as root). ``GATEWAY_TEST_POSTGRES_URL`` names an existing server instead; its role must be
allowed to create databases.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tests.servers import free_port

EXTERNAL_URL_VARIABLE = "GATEWAY_TEST_POSTGRES_URL"


def _bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has ``initdb``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: run `make system-packages` (Debian's postgresql), "
            f"or set {EXTERNAL_URL_VARIABLE} to a server the tests may create databases on"
        )
    return Path(found[-1]).parent


class PostgresProcess:
    """A PostgreSQL server of the test session's own, on 127.0.0.1, with no durability."""

    def __init__(self, settings: Sequence[str] = ()) -> None:
        """``settings``: further server settings, each ``name=value`` (``postgres -c``)."""
        self.bindir = _bindir()
        self.settings = tuple(settings)
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._as_user: dict[str, Any] = {}

    def start(self) -> PostgresProcess:
        """``initdb`` a temporary cluster and start the server; wait until it takes queries."""
        self._root = Path(tempfile.mkdtemp(prefix="vg-postgres-"))
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self._root, account.pw_uid, account.pw_gid)
            self._as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        data = self._root / "data"
        log = self._root / "server.log"
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(data),
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            cwd=self._root,
            **self._as_user,
        )
        with log.open("wb") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self._root),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    *(arg for setting in self.settings for arg in ("-c", setting)),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._root,
                **self._as_user,
            )
        self._wait_ready(log)
        return self

    def _wait_ready(self, log: Path, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        ready = [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {log.read_text(errors='replace')[-2000:]}")
            if subprocess.run(ready, check=False).returncode == 0:  # noqa: S603
                return
            time.sleep(0.05)
        raise TimeoutError(f"postgres did not start on port {self.port}")

    def stop(self) -> None:
        """Fast shutdown, then remove the cluster."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


def _dsn(url: str) -> str:
    """A SQLAlchemy URL as asyncpg's DSN (no ``+asyncpg`` driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(server_url: str) -> str:
    """A new, empty database on ``server_url``'s server; its URL."""
    name = f"vg_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, url: str) -> None:
    """Drop the database ``url`` names, closing whatever is still connected to it."""
    admin = await asyncpg.connect(_dsn(server_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await admin.close()


async def truncate(url: str, tables: Sequence[str]) -> None:
    """Empty ``tables`` of the database ``url`` names."""
    connection = await asyncpg.connect(_dsn(url))
    try:
        await connection.execute(f"TRUNCATE {', '.join(tables)}")
    finally:
        await connection.close()


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on ``server_url``'s server, dropped afterwards; yields its URL."""
    url = await create_database(server_url)
    try:
        yield url
    finally:
        await drop_database(server_url, url)
