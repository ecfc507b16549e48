"""Request counting and fault injection for every route outside ``/__emulator/``, and the
loopback-only guard of the routes inside it.

Control routes can rewrite the tenant's clock, keys and faults, so they answer only clients on
loopback (127.0.0.0/8, ``::1``, ``::ffff:127.x``) unless the emulator was started with
``allow_remote_control``; anyone else gets 403 ``{"error": "access_denied", ...}``.

Counting keys are ``"METHOD <route path template>"`` (``"GET /api/v2/users/{id}"``) for a
request that matches a route and ``"METHOD <raw path>"`` otherwise. A registered
:class:`~emulator.state.Fault` whose path equals the request's raw path or its route template
stalls the request ``delay_ms``, then answers ``status`` without reaching the route (or, with
``status`` null, lets it through late).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Sequence

from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.client_auth import RATE_LIMITED
from emulator.state import Fault, Tenant

CONTROL_PREFIX = "/__emulator/"
REMOTE_CONTROL_REFUSED = (
    "The emulator's control routes answer loopback clients only; "
    "start the emulator with --allow-remote-control to let others in."
)


def is_loopback(client: Sequence[object] | None) -> bool:
    """Whether an ASGI ``client`` is on loopback: 127.0.0.0/8, ``::1`` or ``::ffff:127.x``.

    An unknown client (None, or a host that is not an IP address) is not.
    """
    if not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class EmulatorMiddleware:
    """Pure ASGI middleware: count each request once, inject faults registered for its path,
    and keep the control routes to loopback clients unless ``allow_remote_control``."""

    def __init__(self, app: ASGIApp, tenant: Tenant, *, allow_remote_control: bool = False) -> None:
        self.app = app
        self.tenant = tenant
        self.allow_remote_control = allow_remote_control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX) or path == CONTROL_PREFIX.rstrip("/"):
            if self.allow_remote_control or is_loopback(scope.get("client")):
                await self.app(scope, receive, send)
            else:
                body = {"error": "access_denied", "error_description": REMOTE_CONTROL_REFUSED}
                await _send_json(403, body, send)
            return
        if self.tenant.faults:
            template = self._template(scope)
            fault = self._take_fault(scope["path"], template)
            if fault is not None:
                if fault.delay_ms:
                    await asyncio.sleep(fault.delay_ms / 1000)
                if fault.status is not None:
                    self.tenant.count_request(f"{scope['method']} {template or scope['path']}")
                    await _send_fault(fault, fault.status, send)
                    return
        counted = False

        async def counting_send(message: Message) -> None:
            nonlocal counted
            # Count before the answer leaves, so a client reading stats right after sees it.
            if message["type"] == "http.response.start" and not counted:
                counted = True
                self.tenant.count_request(self._key(scope))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if not counted:
                self.tenant.count_request(self._key(scope))

    def _key(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path_format", None) if route else self._template(scope)
        return f"{scope['method']} {path or scope['path']}"

    @staticmethod
    def _template(scope: Scope) -> str | None:
        """The path template of the route the router would pick.

        Only for requests that never reached the router (faults, unmatched paths): routed ones
        carry their route in the scope. ``iter_route_contexts`` sees through included routers,
        which FastAPI keeps nested.
        """
        for route in iter_route_contexts(scope["app"].routes):
            match, _ = route.matches(scope)
            if match is Match.FULL:
                path: str | None = route.path_format
                return path
        return None

    def _take_fault(self, path: str, template: str | None) -> Fault | None:
        """The first fault for this raw path or route template, its count spent by one."""
        for fault in self.tenant.faults:
            if fault.path in (path, template):
                fault.count -= 1
                if fault.count <= 0:
                    self.tenant.faults.remove(fault)
                return fault
        return None


async def _send_fault(fault: Fault, status: int, send: Send) -> None:
    body = fault.body
    if body is None:
        if status == 429:
            body = {"error": "too_many_requests", "error_description": RATE_LIMITED}
        else:
            body = {
                "error": "emulated_fault",
                "error_description": f"Injected by {CONTROL_PREFIX}faults",
            }
    await _send_json(status, body, send, fault.headers)


async def _send_json(
    status: int, body: object, send: Send, extra_headers: dict[str, str] | None = None
) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in (extra_headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
