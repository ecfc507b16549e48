"""What the venue API reads and writes: strict input models and the output shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Self
from zoneinfo import available_timezones

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from app.venues.models import ADDRESS_MAX, CITY_MAX, NAME_MAX, TIMEZONE_MAX
from app.venues.text import fold, normalise, refused_character, text_pattern

CAPACITY_MAX = 1_000_000
#: Longest folded name or city, in UTF-8 bytes: keeps the unique index's entries small.
_KEY_MAX_BYTES = 4 * NAME_MAX
#: Files in the zone database that name no place.
_NOT_PLACES = frozenset({"Factory", "localtime", "posixrules"})


def match_key(text: str) -> str:
    """The spelling names and cities are compared by (see :func:`app.venues.text.fold`)."""
    return fold(text)


@cache
def _timezones() -> dict[str, str]:
    """IANA zone names by their lower-case spelling (read from disk once)."""
    return {name.lower(): name for name in available_timezones() - _NOT_PLACES}


@cache
def _countries() -> frozenset[str]:
    return frozenset(country.alpha_2 for country in pycountry.countries)


def check_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased."""
    code = value.upper()
    if code not in _countries():
        raise ValueError(f"unknown country {value!r}: use an ISO 3166-1 alpha-2 code such as DE")
    return code


def check_timezone(value: str) -> str:
    """An IANA time zone name, in its canonical spelling."""
    name = _timezones().get(value.lower())
    if name is None:
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin")
    return name


def check_text(value: str) -> str:
    """Printable text: no control, bidi or format characters, and a short enough folded key."""
    reason = refused_character(value)
    if reason is not None:
        raise ValueError(reason)
    if len(match_key(value).encode()) > _KEY_MAX_BYTES:
        raise ValueError("too long")
    return value


def _text_schema(schema: dict[str, Any]) -> None:
    schema["pattern"] = text_pattern()


def venue_text(max_length: int) -> AfterValidator:
    """A validator for venue text: checked as sent, then stored in its normalised form."""

    def check(value: str) -> str:
        text = normalise(check_text(value))
        if not text:
            raise ValueError("has no visible characters")
        # NFKC can lengthen text (U+FDFA becomes 18 letters); the column holds max_length
        if len(text) > max_length:
            raise ValueError(f"longer than {max_length} characters once normalised")
        return text

    return AfterValidator(check)


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX),
    venue_text(NAME_MAX),
    Field(json_schema_extra=_text_schema),
]
Address = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=ADDRESS_MAX),
    venue_text(ADDRESS_MAX),
    Field(json_schema_extra=_text_schema),
]
City = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=CITY_MAX),
    venue_text(CITY_MAX),
    Field(json_schema_extra=_text_schema),
]


def _country_codes(schema: dict[str, Any]) -> None:
    schema["enum"] = sorted(_countries())


CountryCode = Annotated[
    str,
    StringConstraints(min_length=2, max_length=2),
    AfterValidator(check_country),
    Field(
        description="ISO 3166-1 alpha-2 code (any case is read).",
        examples=["DE"],
        json_schema_extra=_country_codes,
    ),
]


TimeZoneName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TIMEZONE_MAX),
    AfterValidator(check_timezone),
    # not an enum in the document: generators turn "Etc/GMT+0" and "Etc/GMT-0" into one name
    Field(description="IANA time zone name (any case is read).", examples=["Europe/Berlin"]),
]


def _integral(value: object) -> object:
    # JSON has numbers, not integers: 3500.0 is the integer 3500 (strict mode would refuse it)
    return int(value) if isinstance(value, float) and value.is_integer() else value


Capacity = Annotated[
    int,
    Field(gt=0, le=CAPACITY_MAX, description="How many people fit in."),
    BeforeValidator(_integral),
]

_EXAMPLE: dict[str, JsonValue] = {
    "name": "Tempodrom",
    "address": "Möckernstraße 10",
    "city": "Berlin",
    "country": "DE",
    "timezone": "Europe/Berlin",
    "capacity": 3500,
}


class VenueCreate(BaseModel):
    """A new venue; every field is required, no other field is accepted."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"example": _EXAMPLE})

    name: Name
    address: Address
    city: City
    country: CountryCode
    timezone: TimeZoneName
    capacity: Capacity


class VenueUpdate(BaseModel):
    """The fields to change; the ones left out keep their values. ``null`` is not a value."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"example": {"capacity": 4000}, "minProperties": 1},
    )

    name: Name | SkipJsonSchema[None] = None
    address: Address | SkipJsonSchema[None] = None
    city: City | SkipJsonSchema[None] = None
    country: CountryCode | SkipJsonSchema[None] = None
    timezone: TimeZoneName | SkipJsonSchema[None] = None
    capacity: Capacity | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _some_values(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"may not be null: {', '.join(nulls)}")
        return self

    def changes(self) -> dict[str, str | int]:
        """The fields the caller sent, with their new values."""
        return self.model_dump(exclude_unset=True)


class VenueOut(BaseModel):
    """A venue as stored."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str = Field(examples=["Tempodrom"])
    address: str = Field(examples=["Möckernstraße 10"])
    city: str = Field(examples=["Berlin"])
    country: str = Field(description="ISO 3166-1 alpha-2 code.", examples=["DE"])
    timezone: str = Field(description="IANA time zone name.", examples=["Europe/Berlin"])
    capacity: int = Field(examples=[3500])
    created_by: str = Field(
        description="The user id (`sub`) of whoever created it.", examples=["auth0|demo-admin"]
    )
    created_at: datetime
    updated_at: datetime
    version: int = Field(
        description='Grows with every change; the ETag is this number in quotes ("3").',
        examples=[1],
    )


class VenuePage(BaseModel):
    """One page of venues, ordered by name."""

    items: list[VenueOut]
    next: str | None = Field(
        description="The link to the next page, or null on the last one.",
        examples=["/venues?limit=20&cursor=WyJ0ZW1wb2Ryb20iLCIzZjJh..."],
    )
    next_cursor: str | None = Field(
        description="The `cursor` query parameter of the next page, or null on the last one.",
        examples=["WyJ0ZW1wb2Ryb20iLCIzZjJh..."],
    )
