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
