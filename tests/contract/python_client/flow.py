"""The whole flow through the client openapi-python-client generates from ``/openapi.json``.

Run by ``tests/contract/test_python_client.py`` next to the generated package
``venue_gateway_client`` and type-checked with it under ``mypy --strict``: a route whose
document drifts from what the server does fails here, either in mypy or at run time.

Usage: ``python flow.py <gateway url> <admin email> <admin password> <viewer email>
<viewer password>``; prints one line per check, exits non-zero at the first that fails.
"""

from __future__ import annotations

import sys
import uuid
from typing import TypeVar

from venue_gateway_client import AuthenticatedClient, Client
from venue_gateway_client.api.auth import get_me, login, logout, refresh
from venue_gateway_client.api.venues import (
    create_venue,
    delete_venue,
    get_venue,
    list_venues,
    update_venue,
)
from venue_gateway_client.models import (
    Error401InvalidGrant,
    Error401InvalidGrantError,
    Error401InvalidGrantInvalidRequestInvalidToken,
    Error401InvalidGrantInvalidRequestInvalidTokenError,
    Error403CsrfFailedInsufficientScopeUserBlocked,
    Error404NotFound,
    Error409Conflict,
    Error412PreconditionFailed,
    Error412PreconditionFailedError,
    Error422InvalidRequestWithDetails,
    Error428PreconditionRequired,
    Error428PreconditionRequiredError,
    LoginRequest,
    PrincipalOut,
    TokenResponse,
    VenueCreate,
    VenueCreateCountry,
    VenueOut,
    VenuePage,
    VenueUpdate,
)
from venue_gateway_client.types import UNSET, Response

T = TypeVar("T")
U = TypeVar("U")
checks = 0


def check(condition: bool, what: str) -> None:
    """Count a check; stop the run at the first that fails."""
    global checks
    if not condition:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    checks += 1
    print(f"ok {checks}: {what}", flush=True)


def parsed(response: Response[U], kind: type[T], what: str) -> T:
    """The parsed answer, checked to be of ``kind``."""
    answer = response.parsed
    check(isinstance(answer, kind), f"{what}: {response.status_code} {type(answer).__name__}")
    assert isinstance(answer, kind)
    return answer


def log_in(client: Client, username: str, password: str) -> AuthenticatedClient:
    """A client carrying a fresh access token."""
    answer = login.sync_detailed(
        client=client, body=LoginRequest(username=username, password=password)
    )
    tokens = parsed(answer, TokenResponse, f"login as {username}")
    check(tokens.token_type == "Bearer" and tokens.expires_in > 0, "a bearer token")
    return AuthenticatedClient(
        base_url=client._base_url, token=tokens.access_token, raise_on_unexpected_status=True
    )


def main(url: str, admin: tuple[str, str], viewer: tuple[str, str]) -> None:
    """Every step an integrator takes, with its typed answers and errors."""
    anonymous = Client(base_url=url, raise_on_unexpected_status=True)
    wrong = login.sync_detailed(
        client=anonymous, body=LoginRequest(username=admin[0], password="Not-The-Passw0rd!")
    )
    refused = parsed(wrong, Error401InvalidGrant, "a wrong password")
    check(refused.error is Error401InvalidGrantError.INVALID_GRANT, "typed invalid_grant")

    client = log_in(anonymous, *admin)
    me = parsed(get_me.sync_detailed(client=client), PrincipalOut, "me")
    check("create:venues" in me.permissions, "the admin may create venues")

    run = uuid.uuid4().hex[:8]
    created: list[VenueOut] = []
    for n in range(3):
        body = VenueCreate(
            name=f"Client Hall {run} {n}",
            address=f"{n} Generated Street",
            city="Berlin",
            country=VenueCreateCountry.DE,
            timezone="Europe/Berlin",
            capacity=100 + n,
        )
        answer = create_venue.sync_detailed(client=client, body=body)
        created.append(parsed(answer, VenueOut, f"create venue {n}"))
        check(answer.headers["etag"] == '"1"', "a new venue's ETag")
        check(answer.headers["location"] == f"/venues/{created[-1].id}", "its Location")
    again = create_venue.sync_detailed(client=client, body=body)
    parsed(again, Error409Conflict, "the same name in the same city")

    first = created[0]
    read = get_venue.sync_detailed(first.id, client=client)
    check(parsed(read, VenueOut, "read a venue").name == first.name, "the venue read back")
    etag = read.headers["etag"]

    stale = update_venue.sync_detailed(
        first.id, client=client, body=VenueUpdate(capacity=500), if_match='"99"'
    )
    failed = parsed(stale, Error412PreconditionFailed, "a stale If-Match")
    check(failed.error is Error412PreconditionFailedError.PRECONDITION_FAILED, "typed 412")

    # the document requires If-Match, so the generated function always sends one: the 428 a
    # client that forgets it gets is parsed with the generated model
    bare = client.get_httpx_client().patch(
        f"/venues/{first.id}",
        json={"capacity": 500},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    check(bare.status_code == 428, f"no If-Match: {bare.status_code}")
    required = Error428PreconditionRequired.from_dict(bare.json())
    check(required.error is Error428PreconditionRequiredError.PRECONDITION_REQUIRED, "typed 428")

    changed = update_venue.sync_detailed(
        first.id, client=client, body=VenueUpdate(capacity=500), if_match=etag
    )
    check(parsed(changed, VenueOut, "a change at the ETag").capacity == 500, "the change")
    check(changed.headers["etag"] == '"2"', "the ETag moved on")

    names: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = list_venues.sync_detailed(
            client=client, q=f"Client Hall {run}", limit=2, cursor=cursor or UNSET
        )
        venues = parsed(page, VenuePage, f"page {pages + 1}")
        names += [v.name for v in venues.items]
        pages += 1
        if venues.next_cursor is None:
            check(venues.next_ is None, "the last page has no next link")
            break
        cursor = venues.next_cursor
    check(names == [v.name for v in created] and pages == 2, f"every venue, in order: {names}")

    too_many = list_venues.sync_detailed(client=client, limit=1000)
    invalid = parsed(too_many, Error422InvalidRequestWithDetails, "limit over its maximum")
    details = invalid.details if isinstance(invalid.details, list) else []
    check([d.loc for d in details] == [["query", "limit"]], "details name the field")

    viewing = log_in(anonymous, *viewer)
    denied = create_venue.sync_detailed(client=viewing, body=body)
    parsed(denied, Error403CsrfFailedInsufficientScopeUserBlocked, "a viewer may not create venues")

    for venue in created:
        version = '"2"' if venue is first else '"1"'
        gone = delete_venue.sync_detailed(venue.id, client=client, if_match=version)
        check(gone.status_code == 204, f"delete {venue.name} at its ETag")
    missing = get_venue.sync_detailed(first.id, client=client)
    parsed(missing, Error404NotFound, "a deleted venue")

    renewed = parsed(refresh.sync_detailed(client=client), TokenResponse, "refresh")
    fresh = AuthenticatedClient(
        base_url=url, token=renewed.access_token, raise_on_unexpected_status=True
    )
    check(renewed.access_token != client.token, "a new access token")
    ended = logout.sync_detailed(client=fresh)
    check(ended.status_code == 204, "logout")
    # get_me also takes the session cookie, whose refresh can answer invalid_grant
    logged_out = get_me.sync_detailed(client=fresh)
    after = parsed(logged_out, Error401InvalidGrantInvalidRequestInvalidToken, "me")
    check(after.error is Error401InvalidGrantInvalidRequestInvalidTokenError.INVALID_TOKEN, "out")
    print(f"all {checks} checks passed", flush=True)


if __name__ == "__main__":
    gateway, admin_user, admin_password, viewer_user, viewer_password = sys.argv[1:6]
    main(gateway, (admin_user, admin_password), (viewer_user, viewer_password))
