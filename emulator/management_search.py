"""A small Lucene-like query language for ``GET /api/v2/users?q=...&search_engine=v3``.

Supported: ``field:value``, ``field:"quoted value"``, bare terms (matched against email, name,
nickname and username), ``*`` and ``?`` wildcards, ``AND`` / ``OR`` / ``NOT``, parentheses and
``_exists_:field``. Fields are dotted paths into the user's Management API JSON
(``identities.connection``, ``app_metadata.plan``). Matching ignores case. Juxtaposed terms
are OR-ed, Lucene's default operator (what Auth0's index does with them is UNCONFIRMED).
Parentheses and ``NOT`` nest at most :data:`MAX_DEPTH` deep; deeper queries are ``400``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from emulator.management_core import Json, invalid_query

Predicate = Callable[[Json], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<field>[A-Za-z_][\w.]*):(?:"(?P<fquoted>[^"]*)"|(?P<fbare>[^\s()"]+)) |
        "(?P<quoted>[^"]*)" |
        (?P<bare>[^\s()":]+)
    )""",
    re.VERBOSE,
)
_FREE_TEXT_FIELDS = ("email", "name", "nickname", "username")
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
        if kind in {"NOT", "("}:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise invalid_query(_TOO_DEEP, "q")
            self.pos += 1
            if kind == "NOT":
                negated = self.unary()
                self.depth -= 1
                return lambda doc: not negated(doc)
            inner = self.expression()
            if self._peek() != ")":
                raise invalid_query("Invalid query string: missing ')'", "q")
            self.pos += 1
            self.depth -= 1
            return inner
        if kind == "term":
            field, value, quoted = self.tokens[self.pos][1]
            self.pos += 1
            return _term(field, value, quoted)
        raise invalid_query("Invalid query string: a term is missing", "q")


def _term(field: str | None, value: str, quoted: bool) -> Predicate:
    if field == "_exists_":
        return lambda doc: bool(_values(doc, value))
    pattern = _pattern(value, wildcards=not quoted)
    fields = (field,) if field else _FREE_TEXT_FIELDS
    return lambda doc: any(
        pattern.fullmatch(_text(found)) for name in fields for found in _values(doc, name)
    )


def _pattern(value: str, *, wildcards: bool) -> re.Pattern[str]:
    if not wildcards:
        return re.compile(re.escape(value), re.IGNORECASE)
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value.replace("\\", "")
    )
    return re.compile(regex, re.IGNORECASE)


def _values(doc: Json, path: str) -> list[Any]:
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
