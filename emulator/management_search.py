"""A small Lucene-like query language for ``GET /api/v2/users?q=...&search_engine=v3``.

Supported: ``field:value``, ``field:"quoted value"``, bare terms (matched against email, name,
nickname and username), ``*`` and ``?`` wildcards, ``AND`` / ``OR`` / ``NOT``, parentheses and
``_exists_:field``. Fields are dotted paths into the user's Management API JSON
(``identities.connection``, ``app_metadata.plan``). Matching ignores case. Juxtaposed terms
are OR-ed, Lucene's default operator (what Auth0's index does with them is UNCONFIRMED).
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


def compile_query(q: str) -> Predicate:
    """Parse ``q`` into a predicate over user JSON; malformed queries are ``400``."""
    tokens = _tokenize(q)
    if not tokens:
        return lambda _doc: True
    parser = _Parser(tokens)
    predicate = parser.expression()
    if parser.pos != len(tokens):
        raise invalid_query("Invalid query string: unexpected ')'", "q")
    return predicate


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
        if kind == "NOT":
            self.pos += 1
            inner = self.unary()
            return lambda doc: not inner(doc)
        if kind == "(":
            self.pos += 1
            inner = self.expression()
            if self._peek() != ")":
                raise invalid_query("Invalid query string: missing ')'", "q")
            self.pos += 1
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
