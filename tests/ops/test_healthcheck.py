"""``gateway healthcheck``: finds what the container runs and asks its liveness route."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.healthcheck import Target, find_target, target_of
from tests.conftest import RunningEmulator
from tests.servers import free_port


@pytest.mark.parametrize(
    ("args", "environ", "url"),
    [
        (
            ["/opt/venv/bin/python", "/opt/venv/bin/gateway", "serve"],
            {},
            "http://127.0.0.1:8000/healthz",
        ),
        (
            ["/opt/venv/bin/gateway", "serve"],
            {"GATEWAY_PORT": "9000"},
            "http://127.0.0.1:9000/healthz",
        ),
        (
            ["gateway", "serve", "--port", "8100"],
            {"GATEWAY_PORT": "9000"},
            "http://127.0.0.1:8100/healthz",
        ),
        (
            ["/opt/venv/bin/python", "/opt/venv/bin/gateway", "emulator", "--host", "0.0.0.0"],  # noqa: S104,
            {"GATEWAY_PORT": "8000"},
            "http://127.0.0.1:8001/.well-known/jwks.json",
        ),
        (
            ["gateway", "emulator", "--port=8443", "--tls"],
            {},
            "https://127.0.0.1:8443/.well-known/jwks.json",
        ),
        (["python", "-m", "app", "serve", "--port", "8200"], {}, "http://127.0.0.1:8200/healthz"),
    ],
)
def test_knows_the_server_from_its_command_line(
    args: list[str], environ: dict[str, str], url: str
) -> None:
    target = target_of(args, environ)
    assert target is not None
    assert target.url == url


@pytest.mark.parametrize(
    "args",
    [["gateway", "healthcheck"], ["gateway", "db", "upgrade"], ["memcached", "-p", "11211"], []],
)
def test_other_processes_are_not_probed(args: list[str]) -> None:
    assert target_of(args, {}) is None


def test_finds_the_server_among_the_processes(tmp_path: Path) -> None:
    def process(pid: int, args: list[str], env: dict[str, str]) -> None:
        directory = tmp_path / str(pid)
        directory.mkdir()
        (directory / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
        (directory / "environ").write_bytes(
            b"\0".join(f"{k}={v}".encode() for k, v in env.items()) + b"\0"
        )

    process(1, ["/sbin/tini", "--", "gateway", "healthcheck"], {})
    process(7, ["/opt/venv/bin/python", "/opt/venv/bin/gateway", "serve"], {"GATEWAY_PORT": "8080"})
    (tmp_path / "self").mkdir()
    assert find_target(tmp_path) == Target("serve", "http://127.0.0.1:8080/healthz", 7)


def healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI, fixed argv
        [sys.executable, "-m", "app", "healthcheck", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_exit_status_says_whether_it_answers(emulator: RunningEmulator) -> None:
    alive = healthcheck("--url", f"{emulator.url}/.well-known/jwks.json")
    assert alive.returncode == 0, alive.stderr
    dead = healthcheck("--url", f"http://127.0.0.1:{free_port()}/healthz", "--timeout", "1")
    assert dead.returncode == 1
    assert "ConnectError" in dead.stderr
