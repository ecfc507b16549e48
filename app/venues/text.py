"""Venue text as people see it: invisible characters dropped, compatibility forms folded.

Names that look the same must compare the same, or the one-name-per-city rule can be dodged
with a zero-width space or a fullwidth letter. So text is cleaned before it is stored or keyed:

- bidirectional controls are refused: they reorder what is shown around them, so dropping
  them silently would store something other than what the sender saw;
- other format characters that are not default-ignorable (Arabic number signs, interlinear
  annotations, hieroglyph joiners, ...) are refused too;
- the remaining default-ignorable code points (zero-width space and joiners, soft hyphen,
  variation selectors, tags, ...) are dropped;
- what is left is put in Unicode NFKC, so fullwidth and mathematical letters become plain ones.
"""

from __future__ import annotations

import unicodedata
from functools import cache

#: Default_Ignorable_Code_Point, as listed in the Unicode Character Database's
#: DerivedCoreProperties.txt (15.0.0; unchanged in 15.1 and 16.0). Python's ``unicodedata``
#: has no lookup for this property, so the ranges are spelled out here.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # SOFT HYPHEN
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x061C, 0x061C),  # ARABIC LETTER MARK
    (0x115F, 0x1160),  # HANGUL CHOSEONG FILLER..HANGUL JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ..KHMER VOWEL INHERENT AA
    (0x180B, 0x180D),  # MONGOLIAN FREE VARIATION SELECTOR ONE..THREE
    (0x180E, 0x180E),  # MONGOLIAN VOWEL SEPARATOR
    (0x180F, 0x180F),  # MONGOLIAN FREE VARIATION SELECTOR FOUR
    (0x200B, 0x200F),  # ZERO WIDTH SPACE..RIGHT-TO-LEFT MARK
    (0x202A, 0x202E),  # LEFT-TO-RIGHT EMBEDDING..RIGHT-TO-LEFT OVERRIDE
    (0x2060, 0x2064),  # WORD JOINER..INVISIBLE PLUS
    (0x2065, 0x2065),  # <reserved-2065>
    (0x2066, 0x206F),  # LEFT-TO-RIGHT ISOLATE..NOMINAL DIGIT SHAPES
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTOR-1..VARIATION SELECTOR-16
    (0xFEFF, 0xFEFF),  # ZERO WIDTH NO-BREAK SPACE
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),  # <reserved-FFF0>..<reserved-FFF8>
    (0x1BCA0, 0x1BCA3),  # SHORTHAND FORMAT LETTER OVERLAP..SHORTHAND FORMAT UP STEP
    (0x1D173, 0x1D17A),  # MUSICAL SYMBOL BEGIN BEAM..MUSICAL SYMBOL END PHRASE
    (0xE0000, 0xE0000),  # <reserved-E0000>
    (0xE0001, 0xE0001),  # LANGUAGE TAG
    (0xE0002, 0xE001F),  # <reserved-E0002>..<reserved-E001F>
    (0xE0020, 0xE007F),  # TAG SPACE..CANCEL TAG
    (0xE0080, 0xE00FF),  # <reserved-E0080>..<reserved-E00FF>
    (0xE0100, 0xE01EF),  # VARIATION SELECTOR-17..VARIATION SELECTOR-256
    (0xE01F0, 0xE0FFF),  # <reserved-E01F0>..<reserved-E0FFF>
)

#: Bidi_Control, as listed in the Unicode Character Database's PropList.txt (15.0.0).
BIDI_CONTROLS: frozenset[str] = frozenset(
    chr(code)
    for first, last in ((0x061C, 0x061C), (0x200E, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069))
    for code in range(first, last + 1)
)


@cache
def _ignorable_table() -> dict[int, None]:
    """A ``str.translate`` table that deletes every default-ignorable code point."""
    return {code: None for first, last in DEFAULT_IGNORABLE for code in range(first, last + 1)}


def is_default_ignorable(char: str) -> bool:
    """Whether ``char`` is a Default_Ignorable_Code_Point."""
    return ord(char) in _ignorable_table()


def refused_character(text: str) -> str | None:
    """Why ``text`` cannot be venue text, or None: control, bidi or format characters.

    Checked on the text as sent, before anything is dropped: a bidi control is
    default-ignorable too, and must be refused rather than silently removed.
    """
    for char in text:
        category = unicodedata.category(char)
        if category in {"Cc", "Cs"}:
            return "control characters are not allowed"
        if char in BIDI_CONTROLS:
            return f"bidirectional control characters such as U+{ord(char):04X} are not allowed"
        if category == "Cf" and not is_default_ignorable(char):
            return f"format characters such as U+{ord(char):04X} are not allowed"
    return None


def normalise(text: str) -> str:
    """``text`` without default-ignorable code points, in NFKC, trimmed.

    The result is a fixed point: normalising it again changes nothing.
    """
    visible = text.translate(_ignorable_table())
    return unicodedata.normalize("NFKC", visible).strip()


def fold(text: str) -> str:
    """The spelling texts are compared by: normalised, case-folded, single spaces.

    NFKC runs again after case folding, as folding can undo a composition.
    """
    folded = unicodedata.normalize("NFKC", normalise(text).casefold())
    return " ".join(folded.split())


def _ranges(codes: list[int]) -> str:
    """A regular-expression class body for sorted code points, as ``\\uXXXX`` ranges."""
    parts: list[str] = []
    start = previous = codes[0]
    for code in [*codes[1:], -1]:
        if code == previous + 1:
            previous = code
            continue
        parts.append(f"\\u{start:04X}" + ("" if start == previous else f"-\\u{previous:04X}"))
        start = previous = code
    return "".join(parts)


@cache
def text_pattern() -> str:
    """What the OpenAPI document says of venue text: a regular expression for text
    :func:`refused_character` lets through, with something visible in it.

    Portable (ECMA-262 and Python alike), so it names only the refused code points of the
    Basic Multilingual Plane: the few refused format characters above it, and lone surrogates
    (which JSON cannot carry portably anyway), are checked by the server alone; so is text whose
    NFKC form outgrows the length limit.
    """
    bmp = [c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    refused = [c for c in bmp if refused_character(chr(c)) is not None]
    ignorable = _ignorable_table()
    invisible = sorted({*refused, *(c for c in ignorable if c <= 0xFFFF)})
    allowed = f"[^{_ranges(refused)}]"
    visible = f"[^\\s{_ranges(invisible)}]"
    return f"^{allowed}*{visible}{allowed}*$"
