"""The end user's IP: the TCP peer, or X-Forwarded-For when the peer is a trusted proxy.

Addresses are normalised: an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, what a dual-stack
listener reports for an IPv4 client) is the IPv4 address it maps, everywhere it is used (limits,
logs, Auth0's ``auth0-forwarded-for``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalise(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``address``, or the IPv4 address an IPv4-mapped IPv6 address stands for."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=4096)  # the same few peers ask again and again: parse each once
def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = normalise(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None
    # an IPv6 zone (fe80::1%eth0) is free text after the %: no client sends one through a proxy
    return None if getattr(address, "scope_id", None) else address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]
) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def peer_is_trusted(scope: Scope, trusted_proxies: Sequence[Network]) -> bool:
    """Whether the TCP peer of ``scope`` is one of ``trusted_proxies`` (its forwarding headers
    may then be believed)."""
    client = scope.get("client")
    address = _parse(client[0]) if client and trusted_proxies else None
    return address is not None and _trusted(address, trusted_proxies)


def client_ip(request: Request, trusted_proxies: Sequence[Network]) -> str | None:
    """The address to treat as the caller's.

    ``X-Forwarded-For`` is read only when the TCP peer is in ``trusted_proxies``; it is walked
    from the right, skipping further trusted proxies, so a client cannot spoof its address by
    sending the header itself (a forged left-most entry is never reached).
    """
    return scope_client_ip(request.scope, trusted_proxies)


def scope_client_ip(scope: Scope, trusted_proxies: Sequence[Network]) -> str | None:
    """:func:`client_ip` of an ASGI ``scope`` (no :class:`Request` needed: the access line)."""
    client = scope.get("client")
    peer = client[0] if client else None
    peer_address = _parse(peer) if peer else None
    if peer_address is None:
        return peer  # not an IP (a Unix socket, a test transport): as the server reported it
    if not trusted_proxies or not _trusted(peer_address, trusted_proxies):
        return _text(peer_address)
    forwarded = ",".join(
        value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
    )
    hops = [hop for hop in (h.strip() for h in forwarded.split(",")) if hop]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return _text(peer_address)  # a malformed chain is not trusted at all
        if not _trusted(address, trusted_proxies):
            return _text(address)
    first = _parse(hops[0]) if hops else None
    return _text(first) if first is not None else _text(peer_address)


@functools.lru_cache(maxsize=4096)
def _text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return str(address)
