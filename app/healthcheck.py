"""``gateway healthcheck``: the container image's HEALTHCHECK, for whichever server it runs.

One image runs either the gateway (``gateway serve``) or the emulator (``gateway emulator``), and
the probe runs beside it in the same container. It finds the server among the container's
processes (``/proc``), reads where it listens from its arguments and environment, and asks its
liveness route on the loopback interface: ``/healthz`` of the gateway, the signing keys
(``/.well-known/jwks.json``) of the emulator. Liveness only: readiness (``/readyz``) depends on
memcached, the tenant and the database, which an orchestrator should not restart a container for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx

PROC = Path("/proc")
DEFAULT_PORTS = {"serve": 8000, "emulator": 8001}
LIVENESS_PATHS = {"serve": "/healthz", "emulator": "/.well-known/jwks.json"}


@dataclass(frozen=True)
class Target:
    """What to probe: the server's role (``serve`` or ``emulator``) and its liveness URL."""

    role: str
    url: str
    pid: int | None = None


def _option(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def _role(args: list[str]) -> tuple[str, list[str]] | None:
    """``("serve" | "emulator", the arguments after it)`` when ``args`` run a gateway server."""
    for index, arg in enumerate(args[:-1]):
        launcher = Path(arg).name == "gateway" or (
            arg == "app" and index > 0 and args[index - 1] == "-m"
        )
        if launcher and args[index + 1] in DEFAULT_PORTS:
            return args[index + 1], args[index + 2 :]
    return None


def target_of(args: list[str], environ: dict[str, str]) -> Target | None:
    """The probe for a process with command line ``args`` and ``environ``; None if not ours."""
    found = _role(args)
    if found is None:
        return None
    role, rest = found
    port = _option(rest, "--port")
    if role == "serve":
        port = port or environ.get("GATEWAY_PORT")
    scheme = "https" if role == "emulator" and "--tls" in rest else "http"
    url = f"{scheme}://127.0.0.1:{port or DEFAULT_PORTS[role]}{LIVENESS_PATHS[role]}"
    return Target(role, url)


def _read(path: Path) -> list[str]:
    try:
        return [part.decode(errors="replace") for part in path.read_bytes().split(b"\0") if part]
    except OSError:  # gone meanwhile, or not ours to read
        return []


def find_target(proc: Path = PROC) -> Target | None:
    """The gateway server running in this container (the lowest pid), or None."""
    own = os.getpid()
    pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    for pid in pids:
        if pid == own:
            continue
        args = _read(proc / str(pid) / "cmdline")
        environ = dict(
            item.split("=", 1) for item in _read(proc / str(pid) / "environ") if "=" in item
        )
        target = target_of(args, environ)
        if target is not None:
            return Target(target.role, target.url, pid)
    return None


def probe(url: str, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Ask ``url``: (True, status) on a 200, else (False, why)."""
    # The emulator's --tls certificate comes from a CA made at its start, which this process
    # cannot know; a liveness probe over loopback needs the answer, not the peer's identity.
    try:
        response = httpx.get(url, timeout=timeout_s, verify=False)  # noqa: S501
    except httpx.HTTPError as exc:
        return False, f"{url}: {type(exc).__name__}"
    return response.status_code == 200, f"{url}: {response.status_code}"
