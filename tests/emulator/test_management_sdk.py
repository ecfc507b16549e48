"""The official SDK, ``auth0-python`` 6.8, against the emulator's Management API, unchanged.

``auth0.management.ManagementClient(domain=...)`` always builds ``https://{domain}/api/v2``
(and its ``TokenProvider`` always posts to ``https://{domain}/oauth/token``), so it cannot reach
a plain-http loopback server. It is a thin wrapper: every call goes through the Fern-generated
``auth0.management.Auth0`` client it holds, which takes a ``base_url``. The tests use that
client, and the SDK's own ``GetToken`` (which has a ``protocol`` option) for the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from auth0.authentication import GetToken
from auth0.management import Auth0, ManagementClient
from auth0.management.errors import BadRequestError, ConflictError, NotFoundError

from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import CLIENT_ID, CLIENT_SECRET, REALM
from tests.emulator.management_helpers import (
    Factory,
    admin_token,
    management_audience,
    management_tenant,
)

NO_RETRY: Any = {"max_retries": 0}


def sdk_token(running: RunningEmulator) -> str:
    """A Management API token through the SDK's authentication client."""
    domain = running.url.removeprefix("http://")
    tokens = GetToken(domain, CLIENT_ID, client_secret=CLIENT_SECRET, protocol="http")
    token: str = tokens.client_credentials(management_audience(running))["access_token"]
    return token


@contextmanager
def sdk_client(running: RunningEmulator, token: str) -> Iterator[Auth0]:
    """The Fern client aimed at the emulator; its HTTP client is closed afterwards."""
    with httpx.Client(timeout=10) as http:
        yield Auth0(base_url=f"{running.url}/api/v2", token=token, httpx_client=http)


@pytest.fixture
def running(emulator_factory: Factory) -> RunningEmulator:
    """The demo tenant, Management rate limit off."""
    return emulator_factory(management_tenant())


@pytest.fixture
def sdk(running: RunningEmulator) -> Iterator[Auth0]:
    """The SDK with a token from the demo client's own grant."""
    with sdk_client(running, sdk_token(running)) as client:
        yield client


def test_management_client_only_speaks_https(running: RunningEmulator) -> None:
    domain = running.url.removeprefix("http://")
    with httpx.Client() as http:
        client = ManagementClient(domain=domain, token="t", httpx_client=http)
        base_url = client._api._client_wrapper.get_base_url()
    assert base_url == f"https://{domain}/api/v2"


def test_create_get_list_delete_user(sdk: Auth0) -> None:
    created = sdk.users.create(
        connection=REALM,
        email="sdk.user@venues.local",
        password="Sdk-Passw0rd",
        user_metadata={"source": "sdk"},
    )
    assert created.user_id is not None
    assert created.user_id.startswith("auth0|")
    assert created.email == "sdk.user@venues.local"
    assert created.created_at is not None  # the SDK parsed the ISO timestamp
    assert created.identities is not None
    assert created.identities[0].connection == REALM

    fetched = sdk.users.get(created.user_id)
    assert fetched.user_id == created.user_id
    assert fetched.user_metadata == {"source": "sdk"}

    listed = [user.user_id for user in sdk.users.list(q='email:"sdk.user@venues.local"')]
    assert listed == [created.user_id]

    sdk.users.delete(created.user_id)
    with pytest.raises(NotFoundError) as gone:
        sdk.users.get(created.user_id)
    assert gone.value.body["errorCode"] == "inexistent_user"


def test_errors_map_to_sdk_exceptions(sdk: Auth0) -> None:
    with pytest.raises(BadRequestError) as weak:
        sdk.users.create(
            connection=REALM, email="w@venues.local", password="weak", request_options=NO_RETRY
        )
    with pytest.raises(ConflictError) as duplicate:
        sdk.users.create(
            connection=REALM,
            email="admin@venues.local",
            password="Sdk-Passw0rd",
            request_options=NO_RETRY,
        )
    assert weak.value.body["message"] == "PasswordStrengthError: Password is too weak"
    assert duplicate.value.body["message"] == "The user already exists."


def test_client_grants_checkpoint_pager(running: RunningEmulator) -> None:
    with sdk_client(running, admin_token(running)) as sdk:
        for n in range(3):
            client = sdk.clients.create(name=f"m2m-{n}", app_type="non_interactive")
            assert client.client_id is not None
            sdk.client_grants.create(
                client_id=client.client_id, audience="https://api.venues.local", scope=[]
            )
        ids = [grant.id for grant in sdk.client_grants.list(take=2)]
    assert len(ids) == 4
    assert len(set(ids)) == 4


def test_sdk_rides_through_the_demo_rate_limit(emulator: RunningEmulator) -> None:
    # The demo tenant allows 2 requests at once, 2/s; the SDK waits for X-RateLimit-Reset.
    with sdk_client(emulator, sdk_token(emulator)) as sdk:
        users = [sdk.users.get("auth0|demo-admin").email for _ in range(4)]
    assert users == ["admin@venues.local"] * 4
    assert emulator.tenant.requests["GET /api/v2/users/{user_id}"] > 4  # some were 429s
