"""Reading If-Match: strong comparison, lists, ``*``, and what is missing or malformed."""

from __future__ import annotations

import pytest

from app.http.errors import BadRequest
from app.venues.preconditions import PreconditionRequired, etag, parse_if_match


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        ('"3"', {3}),
        (' "3" , "4",W/"5", "x" ', {3, 4}),
        ('W/"3"', set()),
        ('"99999999999"', set()),
        ('"1",', {1}),
        ('"01"', set()),
        ('" 1"', set()),
        ('"1 "', set()),
        ('"+1"', set()),
        ('"٣"', set()),
        ('"00", "01", "2"', {2}),
    ],
)
def test_versions_that_match(header: str, versions: set[int]) -> None:
    assert parse_if_match(header, required=True) == frozenset(versions)


def test_star_matches_any_version() -> None:
    assert parse_if_match(" * ", required=True) is None


def test_missing_is_428_only_when_required() -> None:
    with pytest.raises(PreconditionRequired) as error:
        parse_if_match(None, required=True)
    assert (error.value.status_code, error.value.code) == (428, "precondition_required")
    assert parse_if_match(None, required=False) is None


@pytest.mark.parametrize("header", ["3", "", '"3" "4"', "W/3", '"3', '*, "3"'])
def test_malformed_is_400(header: str) -> None:
    with pytest.raises(BadRequest):
        parse_if_match(header, required=True)


def test_etag_round_trips() -> None:
    assert parse_if_match(etag(7), required=True) == frozenset({7})
