"""A small Lucene-like query language for ``GET /api/v2/users?q=...&search_engine=v3``.

Supported: ``field:value``, ``field:"quoted value"``, bare terms (matched against email, name,
nickname and username), ``*`` and ``?`` wildcards, ``AND`` / ``OR`` / ``NOT``, parentheses,
field groups (``name:(jane OR john)``), ranges (``logins_count:{100 TO *]``,
``created_at:[2020-01-01 TO 2021-01-01}``: square brackets inclusive, curly exclusive, ``*``
open) and ``_exists_:field``. Fields are dotted paths into the user's Management API JSON
(``identities.connection``, ``app_metadata.plan``), plus ``email.domain``.

Auth0's rules (docs ``manage-users/user-search/user-search-query-syntax``): the normalized
fields (``email``, ``name``, ``given_name``, ``family_name``, ``nickname``) match in any case,
every other field (metadata included) is case-sensitive; a leading wildcard needs at least 3
literal characters (``name:*usa``, not ``name:*sa``); ranges and wildcards are not available on
``user_metadata``. Those refusals are ``400 invalid_query_string`` (their wording UNCONFIRMED).
Bare terms match in any case. Juxtaposed terms are OR-ed, Lucene's default operator (what
Auth0's index does with them is UNCONFIRMED). Parentheses, field groups and ``NOT`` nest at
most :data:`MAX_DEPTH` deep; deeper queries are ``400``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from emulator.management_core import Json, invalid_query

Predicate = Callable[[Json], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<rfield>[A-Za-z_][\w.]*):(?P<lbracket>[\[{])\s*(?P<low>[^\s\]}]+)\s+TO\s+
            (?P<high>[^\s\]}]+)\s*(?P<rbracket>[\]}]) |
        (?P<gfield>[A-Za-z_][\w.]*):\( |
        (?P<field>[A-Za-z_][\w.]*):(?:"(?P<fquoted>[^"]*)"|(?P<fbare>[^\s()"]+)) |
        "(?P<quoted>[^"]*)" |
        (?P<bare>[^\s()":]+)
    )""",
    re.VERBOSE,
)
_FREE_TEXT_FIELDS = ("email", "name", "nickname", "username")
# Auth0's normalized fields, searched in any case; every other field is case-sensitive.
_CASE_INSENSITIVE_FIELDS = frozenset(
    {"email", "email.domain", "name", "given_name", "family_name", "nickname"}
)
#: Literal characters a value that starts with a wildcard needs (``*usa``, not ``*sa``).
MIN_SUFFIX_LENGTH = 3
#: How deep parentheses and ``NOT`` may nest: the parser and the predicate it builds recurse
#: once per level, so an unbounded depth would exhaust Python's stack.
MAX_DEPTH = 32
_TOO_DEEP = f"Invalid query string: nested more than {MAX_DEPTH} deep"


def compile_query(q: str) -> Predicate:
    """Parse ``q`` into a predicate over user JSON; malformed or too deeply nested queries are
    ``400``."""
    tokens = _tokenize(q)
    if not tokens:
        return lambda _doc: True
    parser = _Parser(tokens)
    try:
        predicate = parser.expression()
    except RecursionError:
        raise invalid_query(_TOO_DEEP, "q") from None
    if parser.pos != len(tokens):
        raise invalid_query("Invalid query string: unexpected ')'", "q")

    def matches(doc: Json) -> bool:
        try:
            return predicate(doc)
        except RecursionError:
            raise invalid_query(_TOO_DEEP, "q") from None

    return matches


def _tokenize(q: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(q):
        if not q[pos:].strip():
            break
        match = _TOKEN.match(q, pos)
        if match is None or match.end() == pos:
            raise invalid_query(f"Invalid query string near: {q[pos:].strip()}", "q")
        pos = match.end()
        if match["lparen"]:
            tokens.append(("(", None))
        elif match["rparen"]:
            tokens.append((")", None))
        elif match["rfield"]:
            bounds = (match["low"], match["high"])
            inclusive = (match["lbracket"] == "[", match["rbracket"] == "]")
            tokens.append(("range", (match["rfield"], bounds, inclusive)))
        elif match["gfield"]:
            tokens.append(("field(", match["gfield"]))
        elif match["field"]:
            value = match["fquoted"] if match["fquoted"] is not None else match["fbare"]
            tokens.append(("term", (match["field"], value, match["fquoted"] is not None)))
        elif match["quoted"] is not None:
            tokens.append(("term", (None, match["quoted"], True)))
        elif match["bare"] in {"AND", "OR", "NOT"}:
            tokens.append((match["bare"], None))
        else:
            tokens.append(("term", (None, match["bare"], False)))
    return tokens


class _Parser:
    """expression := conjunction ((OR)? conjunction)*; conjunction := unary (AND unary)*."""

    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.group_fields: list[str] = []  # the fields of the enclosing ``field:( ... )``

    def _peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def expression(self) -> Predicate:
        parts = [self.conjunction()]
        while self._peek() not in {None, ")"}:
            if self._peek() == "OR":
                self.pos += 1
            parts.append(self.conjunction())
        return lambda doc: any(part(doc) for part in parts)

    def conjunction(self) -> Predicate:
        parts = [self.unary()]
        while self._peek() == "AND":
            self.pos += 1
            parts.append(self.unary())
        return lambda doc: all(part(doc) for part in parts)

    def unary(self) -> Predicate:
        kind = self._peek()
        if kind in {"NOT", "(", "field("}:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise invalid_query(_TOO_DEEP, "q")
            group_field = self.tokens[self.pos][1]
            self.pos += 1
            if kind == "NOT":
                negated = self.unary()
                self.depth -= 1
                return lambda doc: not negated(doc)
            if kind == "field(":
                self.group_fields.append(group_field)
            inner = self.expression()
            if self._peek() != ")":
                raise invalid_query("Invalid query string: missing ')'", "q")
            if kind == "field(":
                self.group_fields.pop()
            self.pos += 1
            self.depth -= 1
            return inner
        if kind == "term":
            field, value, quoted = self.tokens[self.pos][1]
            self.pos += 1
            return _term(field or self._group_field(), value, quoted)
        if kind == "range":
            field, bounds, inclusive = self.tokens[self.pos][1]
            self.pos += 1
            return _range(field, bounds, inclusive)
        raise invalid_query("Invalid query string: a term is missing", "q")

    def _group_field(self) -> str | None:
        return self.group_fields[-1] if self.group_fields else None


def _term(field: str | None, value: str, quoted: bool) -> Predicate:
    if field == "_exists_":
        return lambda doc: bool(_values(doc, value))
    if not quoted and any(c in value for c in "*?"):
        if _is_user_metadata(field):
            raise invalid_query("Invalid query string: no wildcards on user_metadata fields", "q")
        literal = sum(1 for c in value if c not in "*?\\")
        if value[0] in "*?" and value != "*" and literal < MIN_SUFFIX_LENGTH:
            raise invalid_query(
                "Invalid query string: a leading wildcard needs at least "
                f"{MIN_SUFFIX_LENGTH} more characters: {value}",
                "q",
            )
    ignore_case = field is None or field in _CASE_INSENSITIVE_FIELDS
    pattern = _pattern(value, wildcards=not quoted, ignore_case=ignore_case)
    fields = (field,) if field else _FREE_TEXT_FIELDS
    return lambda doc: any(
        pattern.fullmatch(_text(found)) for name in fields for found in _values(doc, name)
    )


def _range(field: str, bounds: tuple[str, str], inclusive: tuple[bool, bool]) -> Predicate:
    """``field:[low TO high]``: numbers compare as numbers, ISO-8601 times as instants."""
    if _is_user_metadata(field):
        raise invalid_query("Invalid query string: no ranges on user_metadata fields", "q")
    (low, high), (low_inclusive, high_inclusive) = bounds, inclusive

    def within(value: Any) -> bool:
        if isinstance(value, bool | dict | list):
            return False
        if low != "*":
            pair = _ordered(value, low)
            if pair is None or not (pair[0] >= pair[1] if low_inclusive else pair[0] > pair[1]):
                return False
        if high != "*":
            pair = _ordered(value, high)
            if pair is None or not (pair[0] <= pair[1] if high_inclusive else pair[0] < pair[1]):
                return False
        return True

    return lambda doc: any(within(found) for found in _values(doc, field))


def _ordered(value: Any, bound: str) -> tuple[Any, Any] | None:
    """``value`` and ``bound`` as two values of one ordered kind, or None when they have none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value), float(bound)
        except ValueError:
            return None
    if isinstance(value, str):
        moment, limit = _instant(value), _instant(bound)
        if moment is not None and limit is not None:
            return moment, limit
        return value, bound
    return None


def _instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _is_user_metadata(field: str | None) -> bool:
    return field is not None and (field == "user_metadata" or field.startswith("user_metadata."))


def _pattern(value: str, *, wildcards: bool, ignore_case: bool) -> re.Pattern[str]:
    flags = re.IGNORECASE if ignore_case else 0
    if not wildcards:
        return re.compile(re.escape(value), flags)
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value.replace("\\", "")
    )
    return re.compile(regex, flags)


def _values(doc: Json, path: str) -> list[Any]:
    if path == "email.domain":
        email = doc.get("email")
        return [email.rpartition("@")[2]] if isinstance(email, str) and "@" in email else []
    current: list[Any] = [doc]
    for part in path.split("."):
        found: list[Any] = []
        for item in current:
            if isinstance(item, dict) and part in item and item[part] is not None:
                value = item[part]
                found.extend(value if isinstance(value, list) else [value])
        current = found
    return current


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
