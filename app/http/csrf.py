"""CSRF defence for cookie-authenticated requests that change something.

A browser attaches the session cookie to any request for the gateway's site, whoever's page
made it. A request authenticated by the cookie with POST, PUT, PATCH or DELETE must therefore
show that it comes from a page the gateway trusts:

- its ``Origin`` (or, when a browser sends none, the origin of its ``Referer``) is one of the
  configured SPA origins or the gateway's own, and
- it carries ``X-Requested-With`` (any value): a cross-site form or a simple request cannot
  send a custom header, and a script on another origin cannot without a CORS preflight, which
  the gateway answers for the configured origins only.

Otherwise 403 ``csrf_failed``. Requests with a bearer token are not checked: no browser
attaches that on its own.

The gateway's own origin is the scheme and host the browser used. Behind a reverse proxy that
terminates TLS the gateway itself sees plain http, so ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` are believed when, and only when, the TCP peer is a trusted proxy.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from urllib.parse import urlsplit

from starlette.requests import Request

from app.http.client_ip import Network, peer_is_trusted
from app.http.errors import Forbidden

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-Requested-With"


class CsrfFailed(Forbidden):
    """A cookie-authenticated change from an unknown origin, or without the header (403)."""

    code = "csrf_failed"
    description = "The request did not come from an allowed origin."


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def own_origin(request: Request, trusted_proxies: Sequence[Network] = ()) -> str | None:
    """The origin the request was sent to (the gateway's own, as the browser sees it).

    From a trusted proxy, its ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` (the first value
    of each: the proxy nearest the browser) win over what the gateway sees. None when the
    forwarded scheme is not http or https.
    """
    scheme, host = request.url.scheme, request.headers.get("host", "")
    if peer_is_trusted(request.scope, trusted_proxies):
        forwarded_proto = request.headers.get("x-forwarded-proto")
        if forwarded_proto:
            scheme = forwarded_proto.split(",", 1)[0].strip().lower()
        forwarded_host = request.headers.get("x-forwarded-host")
        if forwarded_host:
            host = forwarded_host.split(",", 1)[0].strip()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    host = host.lower().removesuffix(_DEFAULT_PORTS[scheme])
    return f"{scheme}://{host}"


def request_origin(request: Request) -> str | None:
    """The ``Origin`` of the request, else the origin of its ``Referer``; None without both."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.strip().rstrip("/")
    referer = request.headers.get("referer")
    if not referer:
        return None
    parts = urlsplit(referer.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


_NO_ORIGIN = "A request with the session cookie must send Origin (or Referer)."
_FOREIGN_ORIGIN = "Requests with the session cookie are not accepted from this origin."
_NO_HEADER = f"A request with the session cookie must send {CSRF_HEADER}."

CSRF_REFUSALS = (CsrfFailed(_NO_ORIGIN), CsrfFailed(_FOREIGN_ORIGIN), CsrfFailed(_NO_HEADER))
"""The check's three answers, for the OpenAPI document of the routes it guards."""


def check_csrf(
    request: Request,
    allowed_origins: Collection[str],
    trusted_proxies: Sequence[Network] = (),
) -> None:
    """Raise :class:`CsrfFailed` unless an unsafe request comes from an allowed origin with
    ``X-Requested-With``; safe methods pass."""
    if request.method not in UNSAFE_METHODS:
        return
    origin = request_origin(request)
    if origin is None:
        raise CsrfFailed(_NO_ORIGIN)
    if origin not in allowed_origins and origin != own_origin(request, trusted_proxies):
        raise CsrfFailed(_FOREIGN_ORIGIN)
    if CSRF_HEADER.lower() not in request.headers:
        raise CsrfFailed(_NO_HEADER)
