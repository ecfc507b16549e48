"""The lock files cover pyproject.toml: a dependency added without ``make lock`` fails here, not
in the image build or on a fresh machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(lock: str) -> dict[str, Version]:
    text = (ROOT / lock).read_text()
    found = re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", text, re.MULTILINE)
    return {canonicalize_name(name): Version(version) for name, version in found}


def requirements(*extras: str) -> list[Requirement]:
    lines = list(PYPROJECT["dependencies"])
    for extra in extras:
        lines += PYPROJECT["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("requirements.lock", ()), ("requirements-dev.lock", ("test", "bench"))],
)
def test_every_dependency_is_locked_at_an_allowed_version(
    lock: str, extras: tuple[str, ...]
) -> None:
    locked = pins(lock)
    for requirement in requirements(*extras):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is not in {lock}: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{lock} has {name}=={locked[name]}, pyproject.toml wants {requirement}: "
            "run `make lock`"
        )


def test_both_lock_files_agree() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_every_pin_has_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / lock).read_text().strip())
        for entry in entries:
            if entry.startswith("#"):
                continue
            assert "--hash=sha256:" in entry, entry.splitlines()[0]
