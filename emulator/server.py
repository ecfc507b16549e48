"""Serve one emulated tenant with uvicorn: ``python -m emulator.server --port 8001``."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from emulator.app import create_emulator_app
from emulator.state import Tenant


def run(
    host: str,
    port: int,
    tenant_file: Path | None,
    issuer: str | None,
    *,
    allow_remote_control: bool = False,
) -> None:
    """Load ``tenant_file`` (None: the demo tenant) and serve it until interrupted.

    The issuer defaults to ``http://{host}:{port}/``; pass one when clients reach the emulator
    under another name (a container, a proxy), since tokens carry it in ``iss``. The
    ``/__emulator/`` controls answer loopback clients only, unless ``allow_remote_control``.
    """
    tenant = Tenant.from_file(tenant_file, issuer or f"http://{host}:{port}/")
    app = create_emulator_app(tenant, allow_remote_control=allow_remote_control)
    uvicorn.run(app, host=host, port=port)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Serve a local Auth0 emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--tenant-file", type=Path, default=None)
    parser.add_argument("--issuer", default=None)
    parser.add_argument(
        "--allow-remote-control",
        action="store_true",
        help="Let clients that are not on loopback use the /__emulator/ control routes.",
    )
    args = parser.parse_args(argv)
    run(
        args.host,
        args.port,
        args.tenant_file,
        args.issuer,
        allow_remote_control=args.allow_remote_control,
    )


if __name__ == "__main__":
    main()
