"""Venue text: what is dropped, what is refused, and that normalising is a fixed point."""

from __future__ import annotations

import itertools
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.venues.schemas import VenueCreate, check_text, match_key
from app.venues.text import (
    BIDI_CONTROLS,
    DEFAULT_IGNORABLE,
    fold,
    is_default_ignorable,
    normalise,
    refused_character,
    text_pattern,
)
from tests.venues.conftest import TEMPODROM, fullwidth

LOOKALIKES = [
    "Tempo\u200bdrom",  # zero-width space
    "Tempo\u200ddrom",  # zero-width joiner
    "Tempo\u00addrom",  # soft hyphen
    "\ufeffTempodrom",  # byte order mark
    "Tempodrom\ufe0f",  # variation selector
    fullwidth("Tempodrom"),  # fullwidth
    "\U0001d413empodrom",  # mathematical bold capital T
    "\U0001d42d\U0001d41e\U0001d426\U0001d429\U0001d428\U0001d41d\U0001d42b\U0001d428\U0001d426",
]


def test_the_ignorable_table_is_the_ucd_one() -> None:
    ranges = list(DEFAULT_IGNORABLE)
    assert ranges == sorted(ranges)
    assert all(first <= last < nxt for (first, last), (nxt, _) in itertools.pairwise(ranges))
    # DerivedCoreProperties.txt: "Total code points: 4174"
    assert sum(last - first + 1 for first, last in ranges) == 4174
    assert all(is_default_ignorable(char) for char in BIDI_CONTROLS)


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_normalise_to_the_plain_spelling(text: str) -> None:
    assert normalise(text).casefold() == "tempodrom"
    assert match_key(text) == match_key("Tempodrom") == "tempodrom"


def test_normalised_text_keeps_case_accents_and_inner_spaces() -> None:
    assert normalise("Möckernstraße  10") == "Möckernstraße  10"
    assert normalise("Mo\u0308ckernstraße") == "Möckernstraße"
    assert normalise("\u200b Tempodrom \u200b") == "Tempodrom"
    assert normalise("\ufb01le \u2116\uff11") == "file No1"


@pytest.mark.parametrize(
    "char",
    [*sorted(BIDI_CONTROLS), "\u0600", "\u06dd", "\ufff9", "\U000110bd", "\x00", "\x7f", "\ud800"],
)
def test_bidi_format_and_control_characters_are_refused(char: str) -> None:
    assert refused_character(f"Tempo{char}drom") is not None
    with pytest.raises(ValueError, match="not allowed"):
        check_text(f"Tempo{char}drom")


def test_removable_characters_are_not_refused() -> None:
    for first, last in DEFAULT_IGNORABLE:
        for code in range(first, last + 1):
            if chr(code) not in BIDI_CONTROLS:
                assert refused_character(f"a{chr(code)}b") is None, hex(code)


def test_the_model_stores_the_normalised_text() -> None:
    venue = VenueCreate.model_validate(
        {
            **TEMPODROM,
            "name": " " + fullwidth("Tempo") + "\u200bdrom ",
            "city": "Ber\u00adlin",
            "address": fullwidth("x") + " 1",
        }
    )
    assert (venue.name, venue.city, venue.address) == ("Tempodrom", "Berlin", "x 1")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Tempo\u202edrom"),
        ("city", "\u2066Berlin\u2069"),
        ("address", "Möckern\u200estraße 10"),
        ("name", "\u200b\u200b"),
        ("city", "\ufdfa" * 10),
    ],
)
def test_the_model_refuses(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as error:
        VenueCreate.model_validate({**TEMPODROM, field: value})
    assert error.value.errors()[0]["loc"] == (field,)


TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")).filter(
        lambda c: refused_character(c) is None
    )
)


@settings(max_examples=500, deadline=None, database=None)
@given(TEXT)
def test_normalising_is_a_fixed_point(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once
    assert unicodedata.is_normalized("NFKC", once)
    assert not any(is_default_ignorable(char) for char in once)
    assert fold(once) == fold(text)
    assert fold(fold(text)) == fold(text)


def test_the_documented_pattern_is_the_servers_rule_on_the_whole_basic_plane() -> None:
    # fullmatch: a JSON Schema pattern has no multi-line mode, "$" ends the text
    pattern = re.compile(text_pattern())
    for code in itertools.chain(range(0xD800), range(0xE000, 0x10000)):
        char = chr(code)
        assert bool(pattern.fullmatch(f"a{char}")) is (refused_character(char) is None), hex(code)
        visible = normalise(char).strip() != ""
        if refused_character(char) is None and not char.isspace():
            assert bool(pattern.fullmatch(char)) is visible, hex(code)
