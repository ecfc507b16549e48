"""``gateway provision`` and ``gateway doctor`` (registered on the CLI in :mod:`app.cli`)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from pydantic import SecretStr, ValidationError

from app.clients.auth0 import Auth0AuthClient
from app.clients.management import PROVISIONING, ManagementClient
from app.clients.management_errors import ManagementFailure
from app.clients.management_tokens import ClientCredentialsTokens, StaticToken, TokenProvider
from app.http.errors import GatewayError, UpstreamMisconfigured
from app.tenant import doctor as doctor_checks
from app.tenant import provision as provisioning
from app.tenant.config import (
    ConfigError,
    ProvisionConfig,
    ProvisionCredentials,
    auth0_settings,
    credentials,
    load_config,
    tenant_spec,
)
from app.tenant.spec import TenantSpec
from settings.model import Environment, load_settings

EnvOption = Annotated[
    Environment, typer.Option("--env", help="The environment whose tenant this is.")
]


def provision(
    env: EnvOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; change nothing.")
    ] = False,
    token: Annotated[
        str | None, typer.Option(help="A Management API token (or GATEWAY_PROVISION__TOKEN).")
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(help="A management client's id (or GATEWAY_PROVISION__CLIENT_ID)."),
    ] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(help="Its secret (or GATEWAY_PROVISION__CLIENT_SECRET)."),
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="The tenant (default: GATEWAY_AUTH0__DOMAIN).")
    ] = None,
    company: Annotated[
        str | None, typer.Option(help="Names the client <company>-<env> (GATEWAY_COMPANY).")
    ] = None,
    audience: Annotated[
        str | None, typer.Option(help="The API identifier (GATEWAY_AUTH0__AUDIENCE).")
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(help="Write a new client's secret here (mode 0600) instead of printing it."),
    ] = None,
) -> None:
    """Make ENV's Auth0 tenant match the design note; print what changed (idempotent)."""
    try:
        config = load_config(env=env)
        spec = tenant_spec(config, company=company, domain=domain, audience=audience)
        creds = credentials(config, token=token, client_id=client_id, client_secret=client_secret)
    except (ConfigError, ValidationError) as exc:
        _fail(str(exc))
    typer.echo("desired state:")
    for line in spec.describe():
        typer.echo(f"  {line}")
    try:
        with _quiet_loggers():
            planned, outcome = asyncio.run(
                run_provision(config, spec, creds, dry_run=dry_run, echo=typer.echo)
            )
    except provisioning.ProvisionError as exc:
        _fail(str(exc))
    except GatewayError as exc:
        _fail(_explain(exc))
    if outcome is None:
        if dry_run and planned.changes:
            typer.echo("dry run: nothing was changed")
        if planned.client_id:
            typer.echo(f"client_id: {planned.client_id}  (GATEWAY_AUTH0__CLIENT_ID)")
        return
    typer.echo(f"applied {len(outcome.applied)} change(s)")
    if outcome.client_id:
        typer.echo(f"client_id: {outcome.client_id}  (GATEWAY_AUTH0__CLIENT_ID)")
    if outcome.client_secret is not None:
        _hand_over_secret(outcome.client_secret, secret_file)


def doctor(
    env: EnvOption,
    company: Annotated[
        str | None, typer.Option(help="Names the client <company>-<env> (GATEWAY_COMPANY).")
    ] = None,
    probe_user: Annotated[
        str | None,
        typer.Option(
            envvar="GATEWAY_DOCTOR__PROBE_USER", help="A test user to log in with (optional)."
        ),
    ] = None,
    probe_password: Annotated[
        str | None,
        typer.Option(envvar="GATEWAY_DOCTOR__PROBE_PASSWORD", help="The test user's password."),
    ] = None,
) -> None:
    """Check ENV's tenant with the gateway's own settings; exit 1 when anything fails."""
    try:
        settings = load_settings(env=env)
    except (ValidationError, ValueError) as exc:
        check = doctor_checks.Check(
            "settings", "fail", "the gateway's settings do not load", _settings_problem(exc)
        )
        _print_checks([check])
        raise typer.Exit(1) from None
    probe = doctor_checks.Probe(probe_user, SecretStr(probe_password or "")) if probe_user else None
    with _quiet_loggers():
        checks = asyncio.run(doctor_checks.diagnose(settings, company=company, probe=probe))
    checks.insert(
        0, doctor_checks.Check("settings", "ok", f"{env.value}: {settings.auth0.base_url}")
    )
    _print_checks(checks)
    if doctor_checks.failed(checks):
        raise typer.Exit(1)


async def run_provision(
    config: ProvisionConfig,
    spec: TenantSpec,
    creds: ProvisionCredentials,
    *,
    dry_run: bool = False,
    http: httpx.AsyncClient | None = None,
    echo: Callable[[str], None] | None = None,
) -> tuple[provisioning.Plan, provisioning.Outcome | None]:
    """Plan, and unless ``dry_run`` or nothing is to change, apply; ``echo`` prints progress."""
    if http is None:
        async with httpx.AsyncClient(
            timeout=config.auth0.timeout_s, verify=config.auth0.tls_verify()
        ) as client:
            return await run_provision(config, spec, creds, dry_run=dry_run, http=client, echo=echo)
    say = echo or (lambda line: None)
    api = management_client(config, spec, creds, http)
    planned = await provisioning.plan(api, spec)
    for line in provisioning.render(planned):
        say(line)
    if dry_run or not planned.changes:
        return planned, None

    def report(change: provisioning.Change) -> None:
        say(f"{'created' if change.action == 'create' else 'updated'} {change.label}")

    return planned, await provisioning.apply(api, planned, report=report)


def management_client(
    config: ProvisionConfig,
    spec: TenantSpec,
    creds: ProvisionCredentials,
    http: httpx.AsyncClient,
) -> ManagementClient:
    """A Management client for provisioning with ``creds`` (a token, or client credentials)."""
    tokens: TokenProvider
    if creds.token is not None:
        tokens = StaticToken(creds.token.get_secret_value())
    else:
        auth0 = auth0_settings(config, spec).model_copy(
            update={"client_id": creds.client_id, "client_secret": creds.client_secret}
        )
        client = Auth0AuthClient(http, auth0)
        tokens = ClientCredentialsTokens(
            lambda: client.client_credentials(spec.management_audience),
            client_id=creds.client_id or "",
        )
    return ManagementClient(
        http, spec.base_url, tokens, timeout_s=config.auth0.timeout_s, retry=PROVISIONING
    )


def write_secret_file(path: Path, secret: SecretStr) -> None:
    """Write ``secret`` to ``path``, readable by its owner only (0600), replacing any file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        os.write(fd, secret.get_secret_value().encode() + b"\n")
    finally:
        os.close(fd)


def _hand_over_secret(secret: SecretStr, secret_file: Path | None) -> None:
    if secret_file is not None:
        write_secret_file(secret_file, secret)
        typer.echo(
            f"client_secret: written to {secret_file} (mode 0600; GATEWAY_AUTH0__CLIENT_SECRET)"
        )
        return
    typer.echo(
        f"client_secret: {secret.get_secret_value()}  (shown once: store it as "
        "GATEWAY_AUTH0__CLIENT_SECRET in the environment's secrets)"
    )


def _print_checks(checks: list[doctor_checks.Check]) -> None:
    for line in doctor_checks.render(checks):
        typer.echo(line)


def _explain(exc: GatewayError) -> str:
    if isinstance(exc, ManagementFailure) and exc.upstream is not None:
        return (
            f"Auth0 refused: {exc.upstream.describe()}. Provisioning needs a Management API "
            "token or a client with read/create/update on clients, client_grants, "
            "resource_servers and tenant_settings (--token or --client-id/--client-secret)"
        )
    if isinstance(exc, UpstreamMisconfigured):
        return (
            "Auth0 refused the provisioning credentials: check --client-id/--client-secret "
            "(or GATEWAY_PROVISION__*) and that this client has the client_credentials grant "
            "and is authorized for the Auth0 Management API"
        )
    return f"{exc.code}: {exc.description}"


def _settings_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
    return str(exc)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def _quiet_loggers() -> Iterator[None]:
    """The commands say what failed themselves; the gateway's loud upstream logs would repeat it."""
    logger = logging.getLogger("app")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
