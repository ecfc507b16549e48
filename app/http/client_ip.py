"""The end user's IP: the TCP peer, or X-Forwarded-For when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]
) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_ip(request: Request, trusted_proxies: Sequence[Network]) -> str | None:
    """The address to treat as the caller's.

    ``X-Forwarded-For`` is read only when the TCP peer is in ``trusted_proxies``; it is walked
    from the right, skipping further trusted proxies, so a client cannot spoof its address by
    sending the header itself (a forged left-most entry is never reached).
    """
    peer = request.client.host if request.client else None
    peer_address = _parse(peer) if peer else None
    if peer_address is None or not _trusted(peer_address, trusted_proxies):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [hop for hop in (h.strip() for h in forwarded.split(",")) if hop]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return peer  # a malformed chain is not trusted at all
        if not _trusted(address, trusted_proxies):
            return str(address)
    return str(_parse(hops[0])) if hops else peer
