"""``gateway sessions prune`` from the command line."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pydantic import SecretStr
from typer.testing import CliRunner

from app.auth.cipher import SessionCipher
from app.auth.sessions import SessionStore
from app.cli import cli
from app.db.engine import create_engine
from settings import DatabaseSettings


def test_prune_removes_what_has_expired(tmp_path: Path) -> None:
    runner = CliRunner()
    url = f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
    assert runner.invoke(cli, ["db", "upgrade", "--url", url]).exit_code == 0

    async def expired_session() -> None:
        engine = create_engine(DatabaseSettings(url=url))
        past = time.time() - 100_000
        store = SessionStore(engine, SessionCipher.ephemeral(), lifetime_s=60, clock=lambda: past)
        await store.start(
            sub="auth0|alice",
            refresh_token=SecretStr("r"),
            access_token="t",
            issued_at=int(past),
            expires_at=int(past) + 60,
        )
        await engine.dispose()

    asyncio.run(expired_session())
    first = runner.invoke(cli, ["sessions", "prune", "--url", url])
    assert first.exit_code == 0, first.output
    assert "removed 1 session(s), 1 token record(s), 0 revocation(s)" in first.output
    second = runner.invoke(cli, ["sessions", "prune", "--url", url])
    assert "removed 0 session(s)" in second.output
