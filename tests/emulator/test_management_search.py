"""The user search's query parser on its own: how deep a query may nest."""

from __future__ import annotations

import inspect
import sys

import pytest

from emulator.management_core import ManagementError
from emulator.management_search import MAX_DEPTH, compile_query

ADMIN = {"email": "admin@venues.local", "name": "Demo Admin"}


@pytest.mark.parametrize(
    "q",
    [
        "(" * MAX_DEPTH + "name:demo*" + ")" * MAX_DEPTH,
        "NOT " * (MAX_DEPTH - 1) + "(name:nobody)",
        "(NOT " * (MAX_DEPTH // 2) + "name:demo*" + ")" * (MAX_DEPTH // 2),
    ],
)
def test_nesting_up_to_the_bound_is_searched(q: str) -> None:
    assert compile_query(q)(ADMIN) is True


@pytest.mark.parametrize(
    "q",
    [
        "(" * (MAX_DEPTH + 1) + "name:x" + ")" * (MAX_DEPTH + 1),
        "NOT " * (MAX_DEPTH + 1) + "name:x",
        "(NOT " * 20 + "name:x" + ")" * 20,
        "(" * 5000 + "name:x" + ")" * 5000,
        "NOT " * 5000 + "name:x",
        "(" * 5000,
    ],
)
def test_deeper_nesting_is_400(q: str) -> None:
    with pytest.raises(ManagementError) as error:
        compile_query(q)
    assert (error.value.status, error.value.error_code) == (400, "invalid_query_string")
    assert f"nested more than {MAX_DEPTH} deep" in error.value.message


def test_a_recursion_error_is_400_too() -> None:
    """Whatever the bound, running out of stack in the parser or a match is a 400, not a 500."""
    q = "(" * MAX_DEPTH + "name:demo*" + ")" * MAX_DEPTH
    predicate = compile_query(q)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 20)
    try:
        with pytest.raises(ManagementError) as parsing:
            compile_query(q)
        with pytest.raises(ManagementError) as matching:
            predicate(ADMIN)
    finally:
        sys.setrecursionlimit(limit)
    assert parsing.value.status == matching.value.status == 400


# A user as the Management API shows one, for the query language's own rules.
JANE: dict[str, object] = {
    "user_id": "auth0|jane",
    "email": "jane.doe@example.com",
    "name": "Jane Doe",
    "nickname": "jane",
    "logins_count": 150,
    "created_at": "2021-03-04T05:06:07.000Z",
    "email_verified": True,
    "app_metadata": {"plan": "Gold", "seats": 5},
    "user_metadata": {"city": "Paris"},
}


@pytest.mark.parametrize(
    ("q", "matches"),
    [
        # ranges: square brackets inclusive, curly exclusive, * open (docs user-search-query-syntax)
        ("logins_count:[100 TO 200]", True),
        ("logins_count:{100 TO *]", True),
        ("logins_count:[150 TO 200]", True),
        ("logins_count:{150 TO 200]", False),
        ("logins_count:[100 TO 150}", False),
        ("logins_count:[* TO 99]", False),
        ("app_metadata.seats:[5 TO 5]", True),
        ("created_at:[2020-01-01 TO *]", True),
        ("created_at:[2021-03-04T05:06:07Z TO 2021-03-04T05:06:07Z]", True),
        ("created_at:{2021-03-04T05:06:07Z TO *]", False),
        ("created_at:[* TO 2021-01-01}", False),
        ("created_at:[2021-01-01 TO 2022-01-01} AND logins_count:[100 TO *]", True),
        ("nickname:[a TO k]", True),
        ("email_verified:[a TO z]", False),
        # email.domain, the domain part of the email
        ("email.domain:example.com", True),
        ("email.domain:EXAMPLE.com", True),
        ("email.domain:other.com", False),
        # field groups
        ("name:(john OR jane*)", True),
        ("name:(john OR mary)", False),
        ('name:("Jane Doe" AND jane*)', True),
        ("nickname:(NOT bob)", True),
        ("name:(jane*) AND email.domain:(other.com OR example.com)", True),
        # normalized fields in any case, every other field as written
        ("name:JANE*", True),
        ('name:"jane doe"', True),
        ("email:JANE.DOE@example.com", True),
        ("app_metadata.plan:Gold", True),
        ("app_metadata.plan:gold", False),
        ('user_id:"AUTH0|jane"', False),
        # a leading wildcard with three literal characters or more
        ("name:*doe", True),
        ("email:*example.com", True),
        ("name:*", True),
    ],
)
def test_query_rules(q: str, matches: bool) -> None:
    assert compile_query(q)(JANE) is matches


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        ("name:*oe", "a leading wildcard needs at least 3 more characters"),
        ("name:*o*", "a leading wildcard needs at least 3 more characters"),
        ("*oe", "a leading wildcard needs at least 3 more characters"),
        ("user_metadata.city:Par*", "no wildcards on user_metadata fields"),
        ("user_metadata.visits:[1 TO 5]", "no ranges on user_metadata fields"),
        ("name:(jane", "missing ')'"),
    ],
)
def test_refused_queries(q: str, reason: str) -> None:
    with pytest.raises(ManagementError) as error:
        compile_query(q)
    assert (error.value.status, error.value.error_code) == (400, "invalid_query_string")
    assert reason in error.value.message


def test_a_field_group_counts_towards_the_nesting_bound() -> None:
    deep = "name:(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ManagementError) as error:
        compile_query(deep)
    assert f"nested more than {MAX_DEPTH} deep" in error.value.message
    assert compile_query("nickname:(" * MAX_DEPTH + "jane" + ")" * MAX_DEPTH)(JANE) is True
