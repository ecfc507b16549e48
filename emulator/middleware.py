"""Request counting and fault injection for every route outside ``/__emulator/``.

Counting keys are ``"METHOD <route path template>"`` (``"GET /api/v2/users/{id}"``) for a
request that matches a route and ``"METHOD <raw path>"`` otherwise. A registered
:class:`~emulator.state.Fault` whose path equals the request's raw path or its route template
stalls the request ``delay_ms``, then answers ``status`` without reaching the route (or, with
``status`` null, lets it through late).
"""

from __future__ import annotations

import asyncio
import json

from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.client_auth import RATE_LIMITED
from emulator.state import Fault, Tenant

CONTROL_PREFIX = "/__emulator/"


class EmulatorMiddleware:
    """Pure ASGI middleware: count each request once, inject faults registered for its path."""

    def __init__(self, app: ASGIApp, tenant: Tenant) -> None:
        self.app = app
        self.tenant = tenant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
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
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in fault.headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
