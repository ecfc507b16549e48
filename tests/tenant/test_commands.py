"""``gateway provision`` and ``gateway doctor`` as an operator runs them (Typer's runner)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from app.cli import cli
from app.tenant.commands import write_secret_file
from tests.conftest import RunningEmulator
from tests.emulator.management_helpers import management_tenant
from tests.tenant.support import (
    AUDIENCE,
    BOOTSTRAP_ID,
    BOOTSTRAP_SECRET,
    COMPANY,
    PROBE,
    bare_tenant,
)

Factory = Callable[[dict[str, Any] | None], RunningEmulator]
runner = CliRunner()


@pytest.fixture
def running(emulator_factory: Factory) -> RunningEmulator:
    """A bare tenant."""
    return emulator_factory(bare_tenant())


def tenant_flags(running: RunningEmulator) -> list[str]:
    return ["--env", "local", "--domain", running.url, "--company", COMPANY, "--audience", AUDIENCE]


def bootstrap_flags() -> list[str]:
    return ["--client-id", BOOTSTRAP_ID, "--client-secret", BOOTSTRAP_SECRET]


def gateway_env(running: RunningEmulator, client_id: str) -> dict[str, str]:
    secret = running.tenant.clients[client_id].client_secret
    return {
        "GATEWAY_ENV": "local",
        "GATEWAY_COMPANY": COMPANY,
        "GATEWAY_AUTH0__DOMAIN": running.url,
        "GATEWAY_AUTH0__CLIENT_ID": client_id,
        "GATEWAY_AUTH0__CLIENT_SECRET": secret,
        "GATEWAY_AUTH0__AUDIENCE": AUDIENCE,
    }


def provisioned_client(running: RunningEmulator) -> str:
    return next(c.client_id for c in running.tenant.clients.values() if c.name == "acme-local")


class TestProvision:
    def test_first_run_writes_the_secret_to_an_owner_only_file(
        self, running: RunningEmulator, tmp_path: Path
    ) -> None:
        secret_file = tmp_path / "client-secret"
        result = runner.invoke(
            cli,
            [
                "provision",
                *tenant_flags(running),
                *bootstrap_flags(),
                "--secret-file",
                str(secret_file),
            ],
        )
        assert result.exit_code == 0, result.output
        client_id = provisioned_client(running)
        secret = running.tenant.clients[client_id].client_secret
        assert "4 change(s):" in result.output
        assert "+ client acme-local" in result.output
        assert "created client acme-local" in result.output
        assert "updated tenant settings" in result.output
        assert "applied 4 change(s)" in result.output
        assert f"client_id: {client_id}" in result.output
        assert secret not in result.output
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert secret_file.read_text().strip() == secret

        again = runner.invoke(cli, ["provision", *tenant_flags(running), *bootstrap_flags()])
        assert again.exit_code == 0, again.output
        assert "no changes: the tenant already matches" in again.output
        assert "client_secret:" not in again.output

    def test_without_a_file_the_secret_is_shown_once(self, running: RunningEmulator) -> None:
        result = runner.invoke(cli, ["provision", *tenant_flags(running), *bootstrap_flags()])
        assert result.exit_code == 0, result.output
        secret = running.tenant.clients[provisioned_client(running)].client_secret
        assert result.output.count(secret) == 1

    def test_dry_run_prints_the_plan_and_changes_nothing(self, running: RunningEmulator) -> None:
        result = runner.invoke(
            cli, ["provision", *tenant_flags(running), *bootstrap_flags(), "--dry-run"]
        )
        assert result.exit_code == 0, result.output
        assert "~ tenant settings" in result.output
        assert "default directory: None -> 'Username-Password-Authentication'" in result.output
        assert "dry run: nothing was changed" in result.output
        assert running.tenant.settings.default_directory is None
        assert len(running.tenant.clients) == 1

    def test_credentials_from_the_environment(self, running: RunningEmulator) -> None:
        result = runner.invoke(
            cli,
            ["provision", *tenant_flags(running)],
            env={
                "GATEWAY_PROVISION__CLIENT_ID": BOOTSTRAP_ID,
                "GATEWAY_PROVISION__CLIENT_SECRET": BOOTSTRAP_SECRET,
            },
        )
        assert result.exit_code == 0, result.output
        assert "applied 4 change(s)" in result.output

    def test_a_management_token_works_too(self, running: RunningEmulator) -> None:
        token = httpx.post(
            f"{running.url}/oauth/token",
            json={
                "grant_type": "client_credentials",
                "client_id": BOOTSTRAP_ID,
                "client_secret": BOOTSTRAP_SECRET,
                "audience": f"{running.issuer}api/v2/",
            },
        ).json()["access_token"]
        result = runner.invoke(cli, ["provision", *tenant_flags(running), "--token", token])
        assert result.exit_code == 0, result.output
        assert "applied 4 change(s)" in result.output

    def test_refused_credentials_are_explained(self, running: RunningEmulator) -> None:
        result = runner.invoke(
            cli,
            ["provision", *tenant_flags(running), "--client-id", BOOTSTRAP_ID],
            env={"GATEWAY_PROVISION__CLIENT_SECRET": "wrong"},
        )
        assert result.exit_code == 1
        assert "--client-id and --client-secret go together" in result.output
        result = runner.invoke(
            cli,
            [
                "provision",
                *tenant_flags(running),
                "--client-id",
                BOOTSTRAP_ID,
                "--client-secret",
                "x",
            ],
        )
        assert result.exit_code == 1
        assert "Auth0 refused the provisioning credentials" in result.output

    def test_without_credentials_it_says_what_to_set(self) -> None:
        # outside local there is no demo client to fall back on
        flags = ["--env", "dev", "--domain", "acme-dev.invalid", "--audience", AUDIENCE]
        result = runner.invoke(cli, ["provision", *flags, "--company", COMPANY])
        assert result.exit_code == 1
        assert "GATEWAY_PROVISION__TOKEN" in result.output

    def test_the_gateways_own_client_can_check_but_not_change(
        self, running: RunningEmulator
    ) -> None:
        assert (
            runner.invoke(cli, ["provision", *tenant_flags(running), *bootstrap_flags()]).exit_code
            == 0
        )
        client_id = provisioned_client(running)
        env = gateway_env(running, client_id)
        dry = runner.invoke(cli, ["provision", *tenant_flags(running), "--dry-run"], env=env)
        assert dry.exit_code == 0, dry.output
        assert "no changes" in dry.output

        running.tenant.clients[client_id].is_token_endpoint_ip_header_trusted = False
        refused = runner.invoke(cli, ["provision", *tenant_flags(running)], env=env)
        assert refused.exit_code == 1
        assert "403 insufficient_scope" in refused.output


class TestDoctor:
    def test_green_then_red_naming_the_check(self, running: RunningEmulator) -> None:
        assert (
            runner.invoke(cli, ["provision", *tenant_flags(running), *bootstrap_flags()]).exit_code
            == 0
        )
        running.tenant.add_user(
            email=PROBE[0], password=PROBE[1], connection="Username-Password-Authentication"
        )
        client_id = provisioned_client(running)
        env = {
            **gateway_env(running, client_id),
            "GATEWAY_DOCTOR__PROBE_USER": PROBE[0],
            "GATEWAY_DOCTOR__PROBE_PASSWORD": PROBE[1],
        }
        green = runner.invoke(cli, ["doctor", "--env", "local"], env=env)
        assert green.exit_code == 0, green.output
        lines = green.output.strip().splitlines()
        assert lines[0].split() == ["STATUS", "CHECK", "DETAIL"]
        assert all(line.startswith("OK") for line in lines[1:-1])
        assert "probe refresh rotates" in green.output
        assert "0 failed" in lines[-1]

        running.tenant.settings.default_directory = None
        red = runner.invoke(cli, ["doctor", "--env", "local"], env=env)
        assert red.exit_code == 1
        failures = [line for line in red.output.splitlines() if line.startswith("FAIL")]
        assert len(failures) == 1
        assert "default directory" in failures[0]
        assert "-> run `gateway provision --env local`" in failures[0]

    def test_unusable_settings_are_a_failed_check(self) -> None:
        result = runner.invoke(cli, ["doctor", "--env", "dev"], env={"GATEWAY_COMPANY": "acme"})
        assert result.exit_code == 1
        assert result.output.splitlines()[1].startswith("FAIL    settings")
        assert "GATEWAY_AUTH0__CLIENT_ID" in result.output


def test_secret_file_replaces_a_readable_file_with_an_owner_only_one(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_secret_file(path, SecretStr("new-secret"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "new-secret\n"


@pytest.fixture
def demo(emulator_factory: Factory) -> RunningEmulator:
    """The demo tenant (``make dev``), Management rate limit off so the test does not wait."""
    return emulator_factory(management_tenant())


class TestDoctorOnTheDemoTenant:
    def test_make_devs_tenant_passes_with_one_warning(self, demo: RunningEmulator) -> None:
        # the demo client may also provision (extra Management scopes): a warning, not a failure
        result = runner.invoke(
            cli,
            ["doctor", "--env", "local"],
            env={
                "GATEWAY_AUTH0__DOMAIN": demo.url,
                "GATEWAY_DOCTOR__PROBE_USER": "viewer@venues.local",
                "GATEWAY_DOCTOR__PROBE_PASSWORD": "Viewer-Passw0rd!",
            },
        )
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.output.splitlines() if line.startswith("WARN")]
        assert len(warnings) == 1
        assert "management grant scopes" in warnings[0]
        assert "create:clients" in warnings[0]

    def test_make_devs_tenant_needs_one_change_to_be_exact(self, demo: RunningEmulator) -> None:
        result = runner.invoke(
            cli,
            ["provision", "--env", "local", "--dry-run"],
            env={"GATEWAY_AUTH0__DOMAIN": demo.url},
        )
        assert result.exit_code == 0, result.output
        assert "1 change(s):" in result.output
        assert "~ management grant venues-local" in result.output
        assert "client_id: local-gateway" in result.output
