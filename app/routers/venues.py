"""``/venues``: the venue API, each route guarded by its permission from the access token."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response, status
from pydantic.json_schema import SkipJsonSchema

from app.auth.principal import Principal
from app.deps.database import DatabaseSession
from app.deps.security import RequireScopes
from app.http.body_limit import BodyLimitRoute
from app.http.errors import BadRequest, DatabaseUnavailable
from app.http.responses import error_responses
from app.services import Services
from app.venues.cursor import CURSOR_MAX_CHARS, Cursor
from app.venues.preconditions import (
    PreconditionFailed,
    PreconditionRequired,
    etag,
    parse_if_match,
)
from app.venues.repository import DuplicateVenue, VenueNotFound, VenueReader, VenueRepository
from app.venues.schemas import (
    City,
    CountryCode,
    Name,
    VenueCreate,
    VenueOut,
    VenuePage,
    VenueUpdate,
)

router = APIRouter(prefix="/venues", tags=["venues"], route_class=BodyLimitRoute)

MERGE_PATCH = "application/merge-patch+json"
"""What PATCH documents (RFC 7396, ``null`` refused); ``application/json`` is read the same way.

One content type only: generated clients handle one body schema per operation best.
"""
DEFAULT_PAGE = 20
MAX_PAGE = 100

_ETAG_HEADER = {
    "ETag": {
        "description": 'The venue\'s version in quotes, e.g. "3".',
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    }
}
_LOCATION_HEADER = {
    "Location": {
        "description": "The new venue's path, /venues/{id}.",
        "required": True,
        "schema": {"type": "string", "format": "uri-reference"},
    }
}
_IF_MATCH_PATTERN = r'^(\*|(W/)?"[!#-~]*"( *, *(W/)?"[!#-~]*")*)$'
_BAD_IF_MATCH = BadRequest('If-Match must be * or a list of quoted ETags such as "3".')


async def venue_repository(session: DatabaseSession) -> VenueRepository:
    """Venue queries on this request's session."""
    return VenueRepository(session)


Venues = Annotated[VenueRepository, Depends(venue_repository)]


async def venue_reader(request: Request) -> VenueReader:
    """Reads of one venue, straight from the app's database (no session)."""
    services: Services = request.app.state.services
    return VenueReader(services.database.reads)


VenueReads = Annotated[VenueReader, Depends(venue_reader)]
Reader = Annotated[Principal, Depends(RequireScopes("read:venues"))]
Creator = Annotated[Principal, Depends(RequireScopes("create:venues"))]
Updater = Annotated[Principal, Depends(RequireScopes("update:venues"))]
Deleter = Annotated[Principal, Depends(RequireScopes("delete:venues"))]
VenueId = Annotated[uuid.UUID, Path(description="The venue's id (a UUID).")]
IfMatch = Annotated[
    str | SkipJsonSchema[None],
    Header(
        alias="If-Match",
        # in the document only: a malformed If-Match is a 400 of parse_if_match, not a 422
        json_schema_extra={"pattern": _IF_MATCH_PATTERN},
        description='The venue\'s ETag ("3"), a list of ETags, or * for any version.',
    ),
]


@router.get(
    "",
    responses=error_responses(
        BadRequest("The cursor is not one this API issued; start again from the first page."),
        DatabaseUnavailable,
    ),
)
async def list_venues(
    request: Request,
    _: Reader,
    venues: Venues,
    city: Annotated[
        City | SkipJsonSchema[None], Query(description="The city, in any case.")
    ] = None,
    country: Annotated[
        CountryCode | SkipJsonSchema[None], Query(description="ISO 3166-1 alpha-2 code.")
    ] = None,
    q: Annotated[
        Name | SkipJsonSchema[None], Query(description="Part of the name, in any case.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Venues per page.")] = DEFAULT_PAGE,
    cursor: Annotated[
        str | SkipJsonSchema[None],
        Query(
            min_length=1,
            max_length=CURSOR_MAX_CHARS,
            description="The previous page's `next_cursor` (the same filters and limit).",
        ),
    ] = None,
) -> VenuePage:
    """List venues by name, filtered, a page at a time; needs the permission `read:venues`."""
    after = Cursor.decode(cursor) if cursor else None
    items, next_cursor = await venues.page(
        limit=limit, after=after, city=city, country=country, name_contains=q
    )
    next_link = next_token = None
    if next_cursor is not None:
        next_token = next_cursor.encode()
        query = {"city": city, "country": country, "q": q, "limit": limit}
        params = {k: v for k, v in query.items() if v is not None}
        params["cursor"] = next_token
        next_link = f"{request.url.path}?{urlencode(params)}"
    return VenuePage(
        items=[VenueOut.model_validate(v) for v in items], next=next_link, next_cursor=next_token
    )


@router.get(
    "/{venue_id}",
    responses={
        200: {"headers": _ETAG_HEADER},
        **error_responses(VenueNotFound, DatabaseUnavailable),
    },
)
async def get_venue(
    venue_id: VenueId, _: Reader, venues: VenueReads, response: Response
) -> VenueOut:
    """Read one venue, with its ETag; needs the permission `read:venues`."""
    venue = await venues.get(venue_id)
    response.headers["ETag"] = etag(venue.version)
    return VenueOut.model_validate(venue)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"headers": {**_ETAG_HEADER, **_LOCATION_HEADER}},
        **error_responses(DuplicateVenue, DatabaseUnavailable),
    },
)
async def create_venue(
    request: Request, data: VenueCreate, principal: Creator, venues: Venues, response: Response
) -> VenueOut:
    """Create a venue (409 if one of that name is in that city); needs `create:venues`."""
    venue = await venues.create(data, created_by=principal.sub)
    response.headers["Location"] = request.url_for("get_venue", venue_id=str(venue.id)).path
    response.headers["ETag"] = etag(venue.version)
    return VenueOut.model_validate(venue)


@router.patch(
    "/{venue_id}",
    responses={
        200: {"headers": _ETAG_HEADER},
        **error_responses(
            _BAD_IF_MATCH,
            VenueNotFound,
            DuplicateVenue,
            PreconditionFailed,
            PreconditionRequired,
            DatabaseUnavailable,
        ),
    },
)
async def update_venue(
    venue_id: VenueId,
    changes: Annotated[VenueUpdate, Body(media_type=MERGE_PATCH)],
    _: Updater,
    venues: Venues,
    response: Response,
    if_match: IfMatch = None,
) -> VenueOut:
    """Change some fields of a venue, sending its ETag in If-Match; needs `update:venues`."""
    expected = parse_if_match(if_match, required=True)
    venue = await venues.update(venue_id, changes, expected=expected)
    response.headers["ETag"] = etag(venue.version)
    return VenueOut.model_validate(venue)


@router.delete(
    "/{venue_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        _BAD_IF_MATCH, VenueNotFound, PreconditionFailed, DatabaseUnavailable
    ),
)
async def delete_venue(
    venue_id: VenueId, _: Deleter, venues: Venues, if_match: IfMatch = None
) -> None:
    """Delete a venue (only at that ETag, when If-Match is sent); needs `delete:venues`."""
    await venues.delete(venue_id, expected=parse_if_match(if_match, required=False))
