"""HTTP-layer tests reuse the end-to-end gateway: in-process apps over a real memcached and the
emulator served for real."""

from __future__ import annotations

from tests.e2e.conftest import emulator_http, gateway, gateway_factory, recorder

__all__ = ["emulator_http", "gateway", "gateway_factory", "recorder"]
