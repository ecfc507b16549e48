"""TLS for the emulator: a throw-away certificate authority and a server certificate it issues.

Clients that insist on ``https://{domain}`` (auth0-python's ``ManagementClient``, node-auth0)
reach the emulator once it serves https with a certificate they trust: the CA is made afresh
each time the emulator starts, and its certificate is handed to those clients as a PEM file.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import trustme

#: The names every emulator certificate covers.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServerTls:
    """A server certificate and its key on disk (for uvicorn), and the CA that issued them."""

    ca_pem: bytes
    certfile: Path
    keyfile: Path

    def write_ca(self, path: Path) -> None:
        """Write the CA certificate (PEM) to ``path``, replacing it whole.

        A client waiting for the file never reads half of it: it appears by a rename.
        """
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(self.ca_pem)
        partial.replace(path)


def certificate_names(host: str, issuer: str | None = None) -> list[str]:
    """The loopback names, ``host`` unless it is a wildcard address, and the issuer's host."""
    names = list(LOOPBACK_NAMES)
    candidates = [host, urlsplit(issuer).hostname if issuer else None]
    for name in candidates:
        if not name or _is_wildcard(name):
            continue
        if name not in names:
            names.append(name)
    return names


def issue_server_tls(directory: Path, names: Iterable[str] = LOOPBACK_NAMES) -> ServerTls:
    """Make a new CA and a certificate for ``names``; the files go to ``directory``."""
    ca = trustme.CA(organization_name="venue-gateway emulator")
    leaf = ca.issue_cert(*names)
    certfile = directory / "server.pem"
    keyfile = directory / "server-key.pem"
    certfile.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    # the key is readable by its owner only, like any server key
    descriptor = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(leaf.private_key_pem.bytes())
    return ServerTls(ca_pem=ca.cert_pem.bytes(), certfile=certfile, keyfile=keyfile)


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
