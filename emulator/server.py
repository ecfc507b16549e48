"""Serve one emulated tenant with uvicorn: ``python -m emulator.server --port 8001``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import uvicorn

from emulator.app import create_emulator_app
from emulator.state import Tenant
from emulator.tls import certificate_names, issue_server_tls


def run(
    host: str,
    port: int,
    tenant_file: Path | None,
    issuer: str | None,
    *,
    allow_remote_control: bool = False,
    tls: bool = False,
    tls_ca_out: Path | None = None,
) -> None:
    """Load ``tenant_file`` (None: the demo tenant) and serve it until interrupted.

    The issuer defaults to ``http://{host}:{port}/`` (``https://`` with ``tls``); pass one when
    clients reach the emulator under another name (a container, a proxy), since tokens carry it
    in ``iss``. The ``/__emulator/`` controls answer loopback clients only, unless
    ``allow_remote_control``.

    With ``tls`` it serves https with a certificate for the loopback names, ``host`` and the
    issuer's host, issued by a CA made at start; the CA certificate (PEM) is written to
    ``tls_ca_out`` (default: a file in a temporary directory, named on stderr) before the port
    opens, for clients to trust.
    """
    if tls_ca_out is not None and not tls:
        raise ValueError("tls_ca_out needs tls")
    scheme = "https" if tls else "http"
    tenant = Tenant.from_file(tenant_file, issuer or f"{scheme}://{host}:{port}/")
    app = create_emulator_app(tenant, allow_remote_control=allow_remote_control)
    if not tls:
        uvicorn.run(app, host=host, port=port)
        return
    with tempfile.TemporaryDirectory(prefix="emulator-tls-") as directory:
        server_tls = issue_server_tls(Path(directory), certificate_names(host, tenant.issuer))
        ca_path = tls_ca_out or Path(directory) / "ca.pem"
        server_tls.write_ca(ca_path)
        sys.stderr.write(f"emulator CA certificate (PEM): {ca_path}\n")
        uvicorn.run(
            app,
            host=host,
            port=port,
            ssl_certfile=server_tls.certfile,
            ssl_keyfile=server_tls.keyfile,
        )


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
    parser.add_argument("--tls", action="store_true", help="Serve https (a CA made at start).")
    parser.add_argument(
        "--tls-ca-out", type=Path, default=None, help="Write the CA certificate (PEM) here."
    )
    args = parser.parse_args(argv)
    if args.tls_ca_out is not None and not args.tls:
        parser.error("--tls-ca-out needs --tls")
    run(
        args.host,
        args.port,
        args.tenant_file,
        args.issuer,
        allow_remote_control=args.allow_remote_control,
        tls=args.tls,
        tls_ca_out=args.tls_ca_out,
    )


if __name__ == "__main__":
    main()
