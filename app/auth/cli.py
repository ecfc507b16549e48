"""``gateway sessions``: the session store's housekeeping, for a scheduler."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

sessions_cli = typer.Typer(
    help="The session store: sessions, their lineage and revocations, in the database.",
    no_args_is_help=True,
)


@sessions_cli.command("prune")
def prune(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Database URL; by default GATEWAY_DATABASE__URL, read with the other settings.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Remove expired sessions, sessions ended over a day ago, and expired revocations.

    Every gateway worker also does this every GATEWAY_SESSION__PRUNE_INTERVAL_S.
    """
    from app.auth.cipher import SessionCipher
    from app.auth.sessions import SessionStore
    from app.db.engine import create_engine, display_url
    from settings import DatabaseSettings, load_settings

    settings = load_settings()
    database = DatabaseSettings(url=url) if url else settings.database

    async def main() -> str:
        engine = create_engine(database)
        try:
            # pruning reads no secret: any key will do when none is configured
            cipher = SessionCipher.from_settings(settings.session, allow_ephemeral=True)
            store = SessionStore(engine, cipher, lifetime_s=settings.session.lifetime_s)
            pruned = await store.prune()
            return (
                f"{display_url(engine)}: removed {pruned.sessions} session(s), "
                f"{pruned.tokens} token record(s), {pruned.revocations} revocation(s)"
            )
        finally:
            await engine.dispose()

    typer.echo(asyncio.run(main()))
