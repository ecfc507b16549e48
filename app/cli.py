"""The ``gateway`` command: serve, dev, emulator, healthcheck, db, sessions, tenant tools."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from app.auth.cli import sessions_cli
from app.db.cli import db_cli
from app.observability.logging import LogFormat
from app.tenant.commands import doctor, provision

cli = typer.Typer(
    help="venue-gateway: Auth0 password login in front of the venue API.",
    no_args_is_help=True,
    add_completion=False,
)

DEMO_USERS = (
    ("admin@venues.local", "Admin-Passw0rd!", "every permission"),
    ("viewer@venues.local", "Viewer-Passw0rd!", "read:venues"),
)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.", envvar="GATEWAY_HOST")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to bind.", envvar="GATEWAY_PORT")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes.", envvar="GATEWAY_WORKERS")
    ] = 1,
    graceful_timeout: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seconds requests in flight get to finish on SIGTERM.",
            envvar="GATEWAY_GRACEFUL_TIMEOUT_S",
        ),
    ] = 20,
    log_level: Annotated[
        str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.", envvar="GATEWAY_LOG_LEVEL")
    ] = "INFO",
) -> None:
    """Serve the gateway under uvicorn (JSON logs on stdout); settings from GATEWAY_* variables.

    Header limits and read timeouts come from GATEWAY_SERVER__* (docs/operations.md).
    """
    from app.server import run

    run(
        host=host,
        port=port,
        workers=workers,
        graceful_timeout_s=graceful_timeout,
        log_level=log_level,
    )


@cli.command()
def emulator(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8001,
    tenant: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Tenant JSON file.")
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option(help="Issuer URL (default http://HOST:PORT/, https:// with --tls)."),
    ] = None,
    allow_remote_control: Annotated[
        bool,
        typer.Option(
            "--allow-remote-control",
            help="Let non-loopback clients use the /__emulator/ control routes.",
        ),
    ] = False,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve https, with a certificate from a local CA made at start.",
        ),
    ] = False,
    tls_ca_out: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="With --tls: write the CA certificate (PEM) here."),
    ] = None,
) -> None:
    """Serve the local Auth0 emulator (the demo tenant unless --tenant is given).

    With --tls, clients trust the CA file (the gateway: GATEWAY_AUTH0__CA_FILE; docs/emulator.md).
    """
    from emulator.server import run

    if tls_ca_out is not None and not tls:
        raise typer.BadParameter("needs --tls", param_hint="--tls-ca-out")
    run(
        host,
        port,
        tenant,
        issuer,
        allow_remote_control=allow_remote_control,
        tls=tls,
        tls_ca_out=tls_ca_out,
    )


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8000,
    emulator_port: Annotated[int, typer.Option(help="Emulator port.")] = 8001,
    spa_port: Annotated[
        int, typer.Option(help="The example SPA's port (examples/spa, cookie mode).")
    ] = 5173,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            case_sensitive=False,
            help="Gateway logs: console lines (coloured unless NO_COLOR is set), JSON lines, "
            "or auto: console when stdout is a terminal, else JSON.",
            envvar="GATEWAY_LOG_FORMAT",
        ),
    ] = LogFormat.AUTO,
) -> None:
    """Run the emulator with the demo tenant, the gateway against it (GATEWAY_ENV=local), and
    the example SPA."""
    from app.example_spa import SPA_DIR, create_spa_app
    from app.main import create_app
    from app.observability.logging import uvicorn_log_config
    from app.server import server_options
    from emulator.app import create_emulator_app
    from emulator.state import Tenant
    from settings import Environment, load_settings

    emulator_url = f"http://127.0.0.1:{emulator_port}"
    os.environ["GATEWAY_ENV"] = "local"
    settings = load_settings(env=Environment.LOCAL)
    settings.auth0.domain = emulator_url
    gateway_url = f"http://127.0.0.1:{port}"
    spa_url = f"http://127.0.0.1:{spa_port}"
    if spa_url not in settings.cors_origins:
        settings.cors_origins.append(spa_url)
    tenant = Tenant.from_file(None, f"{emulator_url}/")
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                create_emulator_app(tenant),
                host="127.0.0.1",
                port=emulator_port,
                log_level="warning",
            )
        ),
        uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host="127.0.0.1",
                port=port,
                log_config=uvicorn_log_config(settings.log_level, log_format),
                **server_options(settings.server),
            )
        ),
    ]
    # the SPA is in the source tree only (a container image has no examples/)
    spa = (SPA_DIR / "index.html").is_file()
    if spa:
        spa_config = uvicorn.Config(
            create_spa_app(gateway_url), host="127.0.0.1", port=spa_port, log_level="warning"
        )
        servers.append(uvicorn.Server(spa_config))
    typer.echo(f"emulator (demo tenant)  {emulator_url}   issuer {emulator_url}/")
    typer.echo(f"gateway                 {gateway_url}")
    typer.echo(f"docs page               {gateway_url}/docs  (press Authorize and log in)")
    if spa:
        typer.echo(f"example SPA             {spa_url}  (cookie mode)")
    for user, password, what in DEMO_USERS:
        typer.echo(f"demo user               {user} / {password}  ({what})")
    typer.echo(
        f"try: curl -s {gateway_url}/auth/login -H 'content-type: application/json' "
        f'-d \'{{"username":"viewer@venues.local","password":"Viewer-Passw0rd!"}}\''
    )

    async def both() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(both())


@cli.command()
def healthcheck(
    url: Annotated[
        str | None,
        typer.Option(help="Probe this URL instead of the server found in this container."),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait.")] = 2.0,
) -> None:
    """Exit 0 when the gateway or emulator running here answers its liveness route, else 1.

    The container image's HEALTHCHECK: it finds `gateway serve` or `gateway emulator` among the
    container's processes and asks it over loopback (docs/operations.md).
    """
    from app.healthcheck import find_target, probe

    if url is None:
        target = find_target()
        if target is None:
            typer.echo("no `gateway serve` or `gateway emulator` runs here", err=True)
            raise typer.Exit(1)
        url = target.url
    ok, detail = probe(url, timeout)
    typer.echo(detail, err=not ok)
    raise typer.Exit(0 if ok else 1)


cli.add_typer(db_cli, name="db")
cli.add_typer(sessions_cli, name="sessions")
cli.command()(provision)
cli.command()(doctor)


def main() -> None:
    """Entry point of the ``gateway`` console script."""
    cli()
