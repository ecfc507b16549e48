"""From a bare tenant: provision, doctor all green, provision again changes nothing, a setting
broken through the Management API turns doctor red naming that check, provision repairs it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.tenant import doctor
from app.tenant.commands import run_provision
from app.tenant.spec import DOCTOR_SCOPES, GRANT_TYPES, PERMISSIONS, USER_SCOPES, TenantSpec
from tests.conftest import RunningEmulator, start_emulator
from tests.tenant.support import (
    AUDIENCE,
    PROBE,
    add_probe_user,
    bare_tenant,
    bootstrap,
    bootstrap_api,
    config,
    gateway_settings,
    spec,
)

Factory = Callable[[dict[str, Any] | None], RunningEmulator]


class Provisioned:
    """A tenant after a first provisioning: the gateway client's credentials."""

    def __init__(self, running: RunningEmulator, client_id: str, client_secret: str) -> None:
        self.running = running
        self.client_id = client_id
        self.client_secret = client_secret

    async def diagnose(self) -> list[doctor.Check]:
        settings = gateway_settings(self.running, self.client_id, self.client_secret)
        return await doctor.diagnose(settings, probe=doctor.Probe(PROBE[0], SecretStr(PROBE[1])))


async def provision_bare(running: RunningEmulator) -> Provisioned:
    """Provision a bare tenant once and add a probe user."""
    _, outcome = await run_provision(config(running), spec(running), bootstrap())
    assert outcome is not None
    assert outcome.client_id is not None
    assert outcome.client_secret is not None
    await add_probe_user(running)
    return Provisioned(running, outcome.client_id, outcome.client_secret.get_secret_value())


@pytest.fixture
async def provisioned(emulator_factory: Factory) -> Provisioned:
    """A bare tenant, provisioned once, with a probe user."""
    return await provision_bare(emulator_factory(bare_tenant()))


@pytest.fixture(scope="module")
def provisioned_shared() -> Iterator[Provisioned]:
    """One provisioned tenant for tests that leave it as they found it (all green)."""
    running = start_emulator(bare_tenant())
    try:
        yield asyncio.run(provision_bare(running))
    finally:
        running.server.stop()


def failing(checks: list[doctor.Check]) -> list[str]:
    return [c.name for c in checks if c.status == "fail"]


class TestFirstRun:
    async def test_creates_what_the_design_note_asks(self, provisioned: Provisioned) -> None:
        tenant = provisioned.running.tenant
        assert tenant.settings.default_directory == "Username-Password-Authentication"
        client = tenant.clients[provisioned.client_id]
        assert client.name == "acme-local"
        assert client.token_endpoint_auth_method == "client_secret_post"
        assert sorted(client.grant_types) == sorted(GRANT_TYPES)
        assert client.is_token_endpoint_ip_header_trusted is True
        assert client.rotates_refresh_tokens
        api = tenant.resource_servers[AUDIENCE]
        assert (api.enforce_policies, api.token_dialect, api.allow_offline_access) == (
            True,
            "access_token_authz",
            True,
        )
        assert {name for name, _ in PERMISSIONS} <= set(api.scope_values)
        grant = tenant.client_grant(provisioned.client_id, f"{provisioned.running.issuer}api/v2/")
        assert grant is not None
        assert {"read:users", "create:users", "update:users", "delete:users"} <= set(grant.scope)
        assert "create:clients" not in grant.scope

    async def test_then_doctor_is_all_green(self, provisioned: Provisioned) -> None:
        checks = await provisioned.diagnose()
        assert failing(checks) == []
        assert [c.status for c in checks] == ["ok"] * len(checks)
        names = [c.name for c in checks]
        for expected in (
            "client credentials",
            "management scopes",
            "default directory",
            "client auth method Post",
            "client grant types",
            "trusted IP header",
            "rotating refresh tokens",
            "API RBAC",
            "API permissions in token",
            "API offline access",
            "API permissions",
            "management grant scopes",
            "probe login",
            "probe token",
            "probe refresh rotates",
        ):
            assert expected in names
        live = [t for t in provisioned.running.tenant.refresh_tokens.values()]
        assert not any(provisioned.running.tenant.is_live(t) for t in live), "probe revoked"

    async def test_then_a_second_run_changes_nothing(self, provisioned: Provisioned) -> None:
        running = provisioned.running
        before = (dict(running.tenant.clients), dict(running.tenant.client_grants))
        planned, outcome = await run_provision(config(running), spec(running), bootstrap())
        assert planned.changes == []
        assert outcome is None
        assert (dict(running.tenant.clients), dict(running.tenant.client_grants)) == before


BREAKAGES: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "trusted IP header",
        "PATCH",
        "/clients/{client}",
        {"is_token_endpoint_ip_header_trusted": False},
    ),
    ("default directory", "PATCH", "/tenants/settings", {"default_directory": None}),
    (
        "revocation keeps other sessions",
        "PATCH",
        "/tenants/settings",
        {"flags": {"revoke_refresh_token_grant": True}},
    ),
    (
        "client auth method Post",
        "PATCH",
        "/clients/{client}",
        {"token_endpoint_auth_method": "client_secret_basic"},
    ),
    (
        "client grant types",
        "PATCH",
        "/clients/{client}",
        {"grant_types": ["password", "client_credentials", "implicit"]},
    ),
    (
        "rotating refresh tokens",
        "PATCH",
        "/clients/{client}",
        {"refresh_token": {"rotation_type": "non-rotating"}},
    ),
    (
        "API permissions in token",
        "PATCH",
        "/resource-servers/{api}",
        {"token_dialect": "access_token"},
    ),
    ("API offline access", "PATCH", "/resource-servers/{api}", {"allow_offline_access": False}),
    ("API permissions", "PATCH", "/resource-servers/{api}", {"scopes": [{"value": "read:venues"}]}),
    (
        "management grant scopes",
        "PATCH",
        "/client-grants/{grant}",
        {"scope": [s for s in USER_SCOPES + DOCTOR_SCOPES if s != "delete:users"]},
    ),
]


class TestBrokenSetting:
    @pytest.mark.parametrize(
        ("check", "method", "path", "body"), BREAKAGES, ids=[b[0] for b in BREAKAGES]
    )
    async def test_doctor_names_it_and_provision_repairs_it(
        self,
        provisioned_shared: Provisioned,
        check: str,
        method: str,
        path: str,
        body: dict[str, Any],
    ) -> None:
        provisioned = provisioned_shared
        running = provisioned.running
        grant = running.tenant.client_grant(provisioned.client_id, f"{running.issuer}api/v2/")
        assert grant is not None
        url = path.format(
            client=provisioned.client_id,
            api=running.tenant.resource_servers[AUDIENCE].id,
            grant=grant.id,
        )
        api = await bootstrap_api(running)
        async with api:
            response = await api.request(method, url, json=body)
        assert response.status_code == 200, response.text

        checks = await provisioned.diagnose()
        assert check in failing(checks)
        broken = next(c for c in checks if c.name == check)
        assert "gateway provision --env local" in broken.hint

        planned, outcome = await run_provision(config(running), spec(running), bootstrap())
        assert outcome is not None
        details = "\n".join(d for change in planned.changes for d in change.details)
        assert check in details
        assert failing(await provisioned.diagnose()) == []


class TestDoctorFindings:
    async def test_more_than_needed_is_a_warning_that_provision_removes(
        self, provisioned: Provisioned
    ) -> None:
        client = provisioned.running.tenant.clients[provisioned.client_id]
        client.grant_types = [*client.grant_types, "implicit"]
        checks = await provisioned.diagnose()
        assert failing(checks) == []
        warned = [c for c in checks if c.status == "warn"]
        assert [c.name for c in warned] == ["client grant types"]
        assert "implicit" in warned[0].detail

        running = provisioned.running
        planned, _ = await run_provision(config(running), spec(running), bootstrap())
        assert [c.label for c in planned.changes] == ["client acme-local"]
        assert "implicit" not in client.grant_types

    async def test_wrong_client_secret_fails_the_live_check(self, provisioned: Provisioned) -> None:
        settings = gateway_settings(provisioned.running, provisioned.client_id, "wrong-secret")
        checks = await doctor.diagnose(settings)
        assert failing(checks) == ["client credentials"]
        assert {c.status for c in checks[1:]} == {"skip"}

    async def test_a_grant_without_the_read_scopes_is_reported(
        self, provisioned: Provisioned
    ) -> None:
        running = provisioned.running
        grant = running.tenant.client_grant(provisioned.client_id, f"{running.issuer}api/v2/")
        assert grant is not None
        grant.scope = ["read:users", "create:users", "update:users", "delete:users"]
        checks = await provisioned.diagnose()
        assert "management scopes" in failing(checks)
        assert "tenant settings readable" in failing(checks)
        line = "\n".join(doctor.render(checks))
        assert "insufficient_scope" in line

    async def test_a_probe_user_with_a_wrong_password_fails_the_probe(
        self, provisioned: Provisioned
    ) -> None:
        settings = gateway_settings(
            provisioned.running, provisioned.client_id, provisioned.client_secret
        )
        checks = await doctor.diagnose(settings, probe=doctor.Probe(PROBE[0], SecretStr("nope")))
        assert failing(checks) == ["probe login"]

    def test_the_table_has_one_line_per_check_and_hints_for_failures(self) -> None:
        checks = [
            doctor.Check("client credentials", "ok", "works"),
            doctor.Check("trusted IP header", "fail", "is False, want True", "run provision"),
        ]
        lines = doctor.render(checks)
        assert len(lines) == 1 + len(checks) + 1
        assert lines[2].startswith("FAIL")
        assert lines[2].endswith("-> run provision")
        assert "-> " not in lines[1]


class TestPlanAgainstAnExistingSetUp:
    async def test_extra_permissions_and_names_are_kept(self, emulator_factory: Factory) -> None:
        data = bare_tenant()
        data["resource_servers"] = [
            {
                "identifier": AUDIENCE,
                "name": "Hand-made API",
                "scopes": [{"value": "read:venues"}, {"value": "export:reports"}],
            }
        ]
        running = emulator_factory(data)
        await run_provision(config(running), spec(running), bootstrap())
        api = running.tenant.resource_servers[AUDIENCE]
        assert api.name == "Hand-made API"
        assert "export:reports" in api.scope_values
        assert {name for name, _ in PERMISSIONS} <= set(api.scope_values)

    async def test_two_clients_with_the_name_are_refused(self, emulator_factory: Factory) -> None:
        from app.tenant.provision import ProvisionError

        data = bare_tenant()
        data["clients"] += [
            {"client_id": f"twin-{n}", "client_secret": "s", "name": "acme-local"} for n in (1, 2)
        ]
        running = emulator_factory(data)
        with pytest.raises(ProvisionError, match="2 applications are named acme-local"):
            await run_provision(config(running), spec(running), bootstrap())

    async def test_dry_run_changes_nothing(self, emulator_factory: Factory) -> None:
        running = emulator_factory(bare_tenant())
        planned, outcome = await run_provision(
            config(running), spec(running), bootstrap(), dry_run=True
        )
        assert outcome is None
        assert [c.action for c in planned.changes] == ["update", "create", "create", "create"]
        assert running.tenant.settings.default_directory is None
        assert AUDIENCE not in running.tenant.resource_servers
        assert len(running.tenant.clients) == 1


class TestRateLimit:
    async def test_provisioning_rides_out_the_management_limit(
        self, emulator_factory: Factory
    ) -> None:
        from app.clients.management import PROVISIONING, ManagementClient
        from app.clients.management_tokens import StaticToken
        from app.tenant import provision

        running = emulator_factory(bare_tenant(management_enabled=True))
        api_client = await bootstrap_api(running)
        token = api_client.headers["authorization"].split()[1]
        await api_client.aclose()
        waits: list[float] = []

        async def sleep(seconds: float) -> None:  # waiting moves the emulator's clock
            waits.append(seconds)
            running.tenant.clock_offset_s += seconds

        target: TenantSpec = spec(running)
        async with httpx.AsyncClient() as http:
            api = ManagementClient(
                http,
                running.url,
                StaticToken(token),
                retry=PROVISIONING,
                sleep=sleep,
                wall_clock=running.tenant.now,
            )
            planned = await provision.plan(api, target)
            await provision.apply(api, planned)
            assert (await provision.plan(api, target)).changes == []
        assert waits, "the tenant's limit (2 a second) was hit and waited out"
        assert running.tenant.settings.default_directory == "Username-Password-Authentication"
