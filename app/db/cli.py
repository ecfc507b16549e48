"""``gateway db``: the venue database's schema (upgrade, downgrade, current)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

db_cli = typer.Typer(
    help="The venue database's schema: the Alembic migrations shipped with the gateway.",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Database URL; by default GATEWAY_DATABASE__URL, read with the other settings.",
        show_default=False,
    ),
]


def _run(url: str | None, action: Callable[[AsyncEngine], Awaitable[None]]) -> tuple[str, str]:
    """Run ``action`` on an engine for ``url``; the database's URL and revision afterwards."""
    from app.db import migrations
    from app.db.engine import create_engine, display_url
    from settings import DatabaseSettings, load_settings

    database = DatabaseSettings(url=url) if url else load_settings().database

    async def main() -> tuple[str, str]:
        engine = create_engine(database)
        try:
            await action(engine)
            return display_url(engine), await migrations.current_revision(engine) or "base"
        finally:
            await engine.dispose()

    return asyncio.run(main())


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: UrlOption = None,
) -> None:
    """Bring the schema up to REVISION (the newest by default)."""
    from app.db import migrations

    where, current = _run(url, lambda engine: migrations.upgrade(engine, revision))
    typer.echo(f"{where}: at {current}")


@db_cli.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; `base` drops every table.")],
    url: UrlOption = None,
) -> None:
    """Take the schema down to REVISION."""
    from app.db import migrations

    where, current = _run(url, lambda engine: migrations.downgrade(engine, revision))
    typer.echo(f"{where}: at {current}")


@db_cli.command("current")
def db_current(
    url: UrlOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit with status 1 unless the schema is current.")
    ] = False,
) -> None:
    """Show the schema's revision and the newest one the code knows."""
    from app.db import migrations

    async def nothing(_: AsyncEngine) -> None:
        return None

    where, current = _run(url, nothing)
    head = migrations.head_revision() or "base"
    typer.echo(f"{where}: at {current}, code expects {head}")
    if check and current != head:
        raise typer.Exit(1)
