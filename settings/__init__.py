"""Typed settings for the gateway, read from ``GATEWAY_*`` environment variables.

``GATEWAY_ENV`` picks the environment (``local``, ``dev``, ``int``, ``prod``) and with it the
defaults; nested values use ``__`` (``GATEWAY_AUTH0__DOMAIN``). Nothing here runs at import time:
call :func:`load_settings` (or build :class:`Settings` yourself in tests).
"""

from settings.model import (
    Auth0Settings,
    BrowserSettings,
    CacheSettings,
    DatabaseSettings,
    Environment,
    IntrospectionSettings,
    SessionSettings,
    Settings,
    load_settings,
)

__all__ = [
    "Auth0Settings",
    "BrowserSettings",
    "CacheSettings",
    "DatabaseSettings",
    "Environment",
    "IntrospectionSettings",
    "SessionSettings",
    "Settings",
    "load_settings",
]
