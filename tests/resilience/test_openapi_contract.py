"""Schemathesis against ``/openapi.json``: no server errors, no answer that breaks the schema.

The gateway runs as a real server (uvicorn on a free port, the emulator and memcached behind
it); Schemathesis generates valid and invalid requests for every operation of the published
schema and checks each answer: never 5xx (a 502/503 would be the emulator's doing, and it is up),
a documented status code, the documented content type, headers and body schema, invalid input
refused, and valid input accepted (the document is as strict as the server).

Callers are the demo users: the admin's token for every route, a fresh session for the
routes that end it (refresh, logout), and a user signed up for the run for the self-service
routes that change or delete the caller (``/users/me``), which run last.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from app.main import create_app
from emulator.state import TokenBucket
from tests.conftest import RunningEmulator
from tests.e2e.conftest import ADMIN, gateway_settings
from tests.servers import MemcachedProcess, UvicornThread

pytestmark = pytest.mark.resilience

Operation = schemathesis.APIOperation[Any, Any, Any, Any]

# 15 keeps the run to seconds; 80 per operation found nothing more while this was written
EXAMPLES_PER_OPERATION = 15
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,  # invalid input gets a 4xx
    schemathesis.checks.ignored_auth,  # a protected route without credentials gets 401
    schemathesis.checks.unsupported_method,  # an undeclared method gets 405
    schemathesis.checks.missing_required_header,  # e.g. DELETE without If-Match
    schemathesis.checks.positive_data_acceptance,  # valid input is accepted
]
# where valid input may still be refused, for a rule no schema can state
ACCEPTANCE_UNKNOWABLE = {
    ("POST", "/users"): "the tenant's password policy (400 weak_password)",
    ("GET", "/users"): "Auth0 pages through the first 1000 users only: (page + 1) * per_page",
    ("GET", "/venues"): "a cursor is opaque: only a next_cursor the API gave is one",
    ("POST", "/venues"): "a time zone is any IANA name, not an enum (see app.venues.schemas)",
    ("PATCH", "/venues/{venue_id}"): "a time zone, as for POST",
}
# Schemathesis's default list of rejections, with 413: a body over the size limit is one too
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": [*REJECTIONS, "5xx"]},
            # the answers that depend on what is stored, not on the request
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "412", "429"]
            },
        }
    }
)
# operations that end the caller's session or account: a fresh session or the run's own user
FRESH_SESSION = {("POST", "/auth/refresh"), ("POST", "/auth/logout")}
OWN_USER_LAST = [
    ("PATCH", "/users/me"),
    ("POST", "/users/me/password"),
    ("DELETE", "/users/me"),
]


@pytest.fixture
def live_gateway(emulator: RunningEmulator, memcached_server: MemcachedProcess) -> Iterator[str]:
    """The gateway served by uvicorn on a free loopback port; yields its URL.

    The emulator's Management API rate limit (2 calls a second, as a free tenant's) is lifted:
    the contract is under test here, not the retries the ``/users`` routes make on a 429.
    """
    emulator.tenant.management_limit = TokenBucket(burst=10_000, per_second=10_000.0)
    settings = gateway_settings(emulator, memcached_server.url, cache={"local_ttl_s": 1})
    server = UvicornThread(create_app(settings)).start()
    try:
        yield server.url
    finally:
        server.stop()


def login(client: httpx.Client, username: str, password: str) -> str:
    """A fresh access token from the gateway."""
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_every_operation_keeps_to_the_schema(live_gateway: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_gateway}/openapi.json", config=CONFIG)
    with httpx.Client(base_url=live_gateway, timeout=10) as client:
        admin = login(client, *ADMIN)
        email, password = f"contract-{uuid.uuid4().hex[:8]}@example.com", "Contract-Passw0rd!"
        signup = client.post(
            "/users", json={"email": email, "password": password, "name": "Contract Test"}
        )
        assert signup.status_code == 201, signup.text
        own = login(client, email, password)

        def authorization(method: str, path: str) -> str:
            if (method, path) in FRESH_SESSION:
                return login(client, *ADMIN)
            if any((method, path) == op for op in OWN_USER_LAST):
                return own
            return admin

        operations: list[Operation] = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"the published schema is invalid: {result.err()}"
            operations.append(result.ok())
        last = {op: i for i, op in enumerate(OWN_USER_LAST)}
        operations.sort(key=lambda op: last.get((op.method.upper(), op.path), -1))
        failures: list[str] = []
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    check_operation(operation, mode, live_gateway, authorization)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: no input
                except (AssertionError, BaseExceptionGroup) as exc:
                    # collected: one report of every operation that broke the contract
                    summary = "\n    ".join(str(exc).strip().splitlines()[:14])
                    failures.append(
                        f"{operation.method.upper()} {operation.path} ({mode}):\n    {summary}"
                    )
    assert not failures, "\n\n".join(failures)


def check_operation(
    operation: Operation,
    mode: GenerationMode,
    url: str,
    authorization: Callable[[str, str], str],
) -> None:
    """Run ``EXAMPLES_PER_OPERATION`` generated requests of one operation and check each."""
    method = operation.method.upper()
    checks = [
        check
        for check in CHECKS
        if not (
            check is schemathesis.checks.positive_data_acceptance
            and (method, operation.path) in ACCEPTANCE_UNKNOWABLE
        )
    ]

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests every run: a failure here is reproducible
        phases=[Phase.explicit, Phase.generate],  # report the first failure, do not shrink
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case[Any]) -> None:
        headers = {"Authorization": f"Bearer {authorization(method, operation.path)}"}
        if operation.path == "/tokens/introspect":
            headers = {"Authorization": "Basic dmVudWUtc2VydmljZTppbnRyb3NwZWN0LXNlY3JldA=="}
        response = case.call(base_url=url, headers=headers)
        case.validate_response(response, checks=checks, headers=headers)

    run()
