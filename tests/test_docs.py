"""The Markdown docs: every relative link resolves, and nothing points outside the repository.

For every Markdown file in the repository (``README.md``, ``docs/``, ``ops/README.md``,
``bench/``, tracked or not), each relative link (inline, reference-style or image) must name an
existing file or directory inside the repository, and a ``#fragment`` must name a heading of
the Markdown file it points at, by GitHub's anchor rules. No file may point at the team's shared
notes beside the checkout (the ``shared`` folder one level up): the docs are self-contained.
``README.md`` stays the front door: at most 16 KiB.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 16_384

#: Directories never searched: environments, caches, VCS data and build output.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        "__pycache__",
        "build",
        "dist",
    }
)

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")
_LINK_TEXT = r"(?:[^\[\]]|\[[^\[\]]*\])*"
_INLINE_LINK = re.compile(rf"!?\[{_LINK_TEXT}\]\(\s*(?P<target><[^>]*>|[^\s)]*)")
_REFERENCE_USE = re.compile(rf"!?\[(?P<text>{_LINK_TEXT})\]\[(?P<label>[^\[\]]*)\]")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[(?P<label>[^\[\]]+)\]:\s*(?P<target><[^>]*>|\S+)")
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_NOT_A_PARAGRAPH = ("-", "*", "+", ">", "|", "#")
_HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=\"(?P<id>[^\"]+)\"", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SHARED_NOTES = re.compile(r"(?:\.\./)+shared\b|/work/shared\b")
#: The team's notes outside the repository, as source code used to cite them.
_OUTSIDE_NOTES = re.compile(r"auth0-wire|seed-auth0|\breference/|\bwire (?:reference )?§|trap \d")


def markdown_files() -> list[Path]:
    """Every Markdown file under the repository root, outside :data:`SKIP_DIRS`."""
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = sorted(
            d for d in subdirectories if d not in SKIP_DIRS and not d.endswith(".egg-info")
        )
        found += [Path(directory, name) for name in sorted(files) if name.endswith(".md")]
    return found


FILES = markdown_files()


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


@dataclass(frozen=True)
class Link:
    """One link target found in a Markdown file."""

    line: int
    target: str

    def __str__(self) -> str:
        return f"line {self.line}: ({self.target})"


def _prose_lines(text: str, *, blank_code_spans: bool = True) -> Iterator[tuple[int, str]]:
    """Line numbers and lines outside fenced code blocks, code spans blanked out unless not."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = _FENCE.match(line)
        if fence is not None:
            closes = opening is not None and opening.group(1)[0] == fence[0]
            if closes and opening is not None and len(opening.group(1)) >= len(fence):
                fence = None
            continue
        if opening is not None:
            fence = opening.group(1)
            continue
        if blank_code_spans:
            line = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        yield number, line


def _unwrap(target: str) -> str:
    return target[1:-1] if target.startswith("<") and target.endswith(">") else target


def links(text: str) -> list[Link]:
    """Every inline, image and reference-definition target outside code."""
    found: list[Link] = []
    for number, line in _prose_lines(text):
        found += [Link(number, _unwrap(m.group("target"))) for m in _INLINE_LINK.finditer(line)]
        definition = _REFERENCE_DEFINITION.match(line)
        if definition is not None:
            found.append(Link(number, _unwrap(definition.group("target"))))
    return found


def _label(label: str) -> str:
    return " ".join(label.split()).casefold()


def undefined_references(text: str) -> list[str]:
    """Labels of ``[text][label]`` links that no ``[label]: target`` line defines."""
    lines = [line for _, line in _prose_lines(text)]
    defined = {
        _label(m.group("label"))
        for m in (_REFERENCE_DEFINITION.match(line) for line in lines)
        if m is not None
    }
    used = (
        _label(m.group("label") or m.group("text"))
        for line in lines
        for m in _REFERENCE_USE.finditer(line)
    )
    return [label for label in used if label not in defined]


def _heading_text(raw: str) -> str:
    """The text GitHub renders for a heading's Markdown source."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", raw)  # an image renders no text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link renders its text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags
    return text.replace("`", "").replace("*", "")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped,
    each space a ``-``."""
    kept = (
        char
        for char in _heading_text(heading).strip().lower()
        if char in "-_ " or char.isalnum() or unicodedata.category(char).startswith("M")
    )
    return "".join(kept).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown text: its headings' slugs, repeats numbered as GitHub does
    (``setup``, ``setup-1``), and explicit HTML anchors."""
    seen: dict[str, int] = {}
    found: set[str] = set()

    def add(heading: str) -> None:
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")

    previous = ""
    for _, line in _prose_lines(text, blank_code_spans=False):
        atx = _ATX_HEADING.match(line)
        if atx is not None:
            add(atx.group("text") or "")
            previous = ""
            continue
        paragraph = previous.strip() and not previous.lstrip().startswith(_NOT_A_PARAGRAPH)
        if paragraph and _SETEXT_UNDERLINE.match(line):
            add(previous)
            previous = ""
            continue
        previous = line
    found.update(m.group("id") for m in _HTML_ANCHOR.finditer(text))
    return found


@cache
def anchors_of(path: Path) -> frozenset[str]:
    """The anchors of the Markdown file at ``path``."""
    return frozenset(anchors(path.read_text(encoding="utf-8")))


def problem(page: Path, link: Link) -> str | None:
    """Why ``link``, found in ``page``, does not resolve; None when it does (or is external)."""
    target = link.target.strip()
    if not target or _SCHEME.match(target) or target.startswith("//"):
        return None  # an external URL or mailto:, not this test's business
    location, _, fragment = target.partition("#")
    location = unquote(location.split("?", 1)[0])
    resolved = (page.parent / location).resolve() if location else page
    if location.startswith("/") or not resolved.is_relative_to(ROOT):
        return f"{link}: points outside the repository"
    if not resolved.exists():
        return f"{link}: {_relative(resolved)} does not exist"
    markdown = resolved.is_file() and resolved.suffix == ".md"
    if fragment and markdown and unquote(fragment) not in anchors_of(resolved):
        return f"{link}: no heading #{fragment} in {_relative(resolved)}"
    return None


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """Every link of ``page`` (or of ``text``, read as if it were ``page``) that is broken."""
    source = page.read_text(encoding="utf-8") if text is None else text
    found = (problem(page, link) for link in links(source))
    return [message for message in found if message is not None]


def test_the_docs_are_found() -> None:
    names = {_relative(path) for path in FILES}
    assert "README.md" in names
    assert any(name.startswith("docs/") for name in names)


@pytest.mark.parametrize("path", FILES, ids=_relative)
def test_relative_links_resolve(path: Path) -> None:
    problems = broken_links(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", FILES, ids=_relative)
def test_reference_links_are_defined(path: Path) -> None:
    missing = undefined_references(path.read_text(encoding="utf-8"))
    assert not missing, f"no definition for the reference label(s): {', '.join(missing)}"


@pytest.mark.parametrize("path", FILES, ids=_relative)
def test_nothing_points_at_the_shared_notes(path: Path) -> None:
    offending = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _SHARED_NOTES.search(line)
    ]
    assert not offending, "\n".join(offending)


def source_files() -> list[Path]:
    """The project's Python files (the application, the emulator, the tests, the bench)."""
    return sorted(
        path
        for top in ("app", "emulator", "settings", "bench", "tests")
        for path in (ROOT / top).rglob("*.py")
        if not SKIP_DIRS.intersection(path.relative_to(ROOT).parts)
    )


def test_no_source_file_cites_notes_outside_the_repository() -> None:
    """Docstrings, comments and log hints point into docs/, never at notes a clone lacks."""
    offending = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in source_files()
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _OUTSIDE_NOTES.search(line) or _SHARED_NOTES.search(line)
    ]
    assert not offending, "\n".join(offending)


def test_readme_is_the_front_door_not_the_manual() -> None:
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


class TestTheChecker:
    """The helpers catch what they are for: a checker that cannot fail is a defect."""

    def test_slugs_follow_github(self) -> None:
        assert slug("The `gateway` command") == "the-gateway-command"
        assert slug("`POST /auth/login`") == "post-authlogin"
        assert slug("Files under `bench/results/`") == "files-under-benchresults"
        assert slug("memcached restarted, or its data evicted") == (
            "memcached-restarted-or-its-data-evicted"
        )
        assert slug("GATEWAY_ENV & friends") == "gateway_env--friends"
        assert slug("[Linked](x.md) *heading*") == "linked-heading"

    def test_repeated_and_setext_headings(self) -> None:
        text = "# A\n## Setup\n## Setup\n### `POST /x`\nOther\n=====\n\n| a |\n| --- |\n"
        assert anchors(text) == {"a", "setup", "setup-1", "post-x", "other"}

    def test_links_in_code_are_ignored(self) -> None:
        text = "see [x](a.md) and `[y](b.md)`\n```\n[z](c.md)\n```\n![i](<d e.png>)\n[r]: f.md\n"
        assert [link.target for link in links(text)] == ["a.md", "d e.png", "f.md"]

    def test_broken_targets_and_fragments_are_reported(self) -> None:
        page = ROOT / "docs" / "example.md"
        text = (
            "[ok](../README.md#the-manual) [dir](../app/) [web](https://example.com/x)\n"
            "[gone](nowhere.md) [fragment](../README.md#no-such-heading)\n"
            "[out](../../"
            "shared/DESIGN.md)\n"
        )
        problems = broken_links(page, text)
        assert len(problems) == 3, problems
        assert "docs/nowhere.md does not exist" in problems[0]
        assert "no heading #no-such-heading in README.md" in problems[1]
        assert "points outside the repository" in problems[2]

    def test_the_shared_notes_are_recognised(self) -> None:
        up = "../"
        assert _SHARED_NOTES.search(f"see {up}shared/reference/auth0-wire.md")
        assert not _SHARED_NOTES.search("see the shared cache")
        assert _OUTSIDE_NOTES.search("(``reference/auth0-wire.md`` §6.2)")
        assert _OUTSIDE_NOTES.search("# §2 / §10 trap 7: a bad secret")
        assert not _OUTSIDE_NOTES.search("RFC 9110 §8.8.3 and docs/emulator.md")

    def test_undefined_reference_is_reported(self) -> None:
        assert undefined_references("a [link][nowhere] here\n[else]: x.md\n") == ["nowhere"]
        assert undefined_references("a [link][else] here\n[Else]: x.md\n") == []
