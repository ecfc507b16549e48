"""``gateway db``: upgrade, current, downgrade from the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli
from app.db.migrations import head_revision


def test_upgrade_current_downgrade(tmp_path: Path) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'venues.db'}"
    head = head_revision()

    behind = runner.invoke(cli, ["db", "current", "--check", "--url", url])
    assert behind.exit_code == 1
    assert f"at base, code expects {head}" in behind.output

    upgraded = runner.invoke(cli, ["db", "upgrade", "--url", url])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"at {head}" in upgraded.output
    current = runner.invoke(cli, ["db", "current", "--check", "--url", url])
    assert current.exit_code == 0
    assert f"at {head}, code expects {head}" in current.output

    downgraded = runner.invoke(cli, ["db", "downgrade", "base", "--url", url])
    assert downgraded.exit_code == 0, downgraded.output
    assert "at base" in downgraded.output
