"""The settings model and the per-environment defaults."""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

LOCAL_EMULATOR_URL = "http://127.0.0.1:8001"
LOCAL_CLIENT_ID = "local-gateway"
LOCAL_CLIENT_SECRET = "local-gateway-secret"  # noqa: S105 - the emulator's public demo secret
LOCAL_AUDIENCE = "https://api.venues.local"
DEFAULT_CONNECTION = "Username-Password-Authentication"
#: The SPA's dev server (Vite) when nothing else is set in ``local``.
LOCAL_CORS_ORIGINS = ("http://localhost:5173", "http://127.0.0.1:5173")


class Environment(StrEnum):
    """Where the gateway runs; each one has its own Auth0 tenant."""

    LOCAL = "local"
    DEV = "dev"
    INT = "int"
    PROD = "prod"


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Auth0Settings(BaseModel):
    """The tenant the gateway logs users in at, and the client it uses there."""

    domain: str | None = Field(
        default=None,
        description="A bare tenant domain (acme-dev.auth0.com) or a full URL (http://127.0.0.1:8001).",
    )
    client_id: str | None = None
    client_secret: SecretStr | None = None
    audience: str | None = None
    connection: str = DEFAULT_CONNECTION
    scope: str = "openid profile email offline_access"
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    jwks_cache_s: float = Field(default=600.0, ge=0)
    jwks_min_refetch_interval_s: float = Field(default=30.0, ge=0)
    leeway_s: int = Field(default=10, ge=0, le=300)
    profile_ttl_s: int = Field(
        default=3600, ge=0, description="How long a user's /userinfo profile is reused."
    )
    accept_opaque_tokens: bool = Field(
        default=False,
        description=(
            "Validate opaque (/userinfo-only) tokens through /userinfo. Off by default: the "
            "gateway's own logins always yield JWTs, and every unknown opaque-looking string "
            "costs one call to Auth0."
        ),
    )
    opaque_cache_s: int = Field(default=300, ge=1, le=3600)
    scopes_as_permissions: bool = Field(
        default=False,
        description=(
            "Count the token's scopes as permissions too: for an API without RBAC (no "
            "permissions claim). Off: only the permissions claim grants access."
        ),
    )
    lock_wait_s: float = Field(
        default=2.0, ge=0, le=30, description="How long a worker waits for another's validation."
    )
    ca_file: FilePath | None = Field(
        default=None,
        description=(
            "PEM certificates that Auth0's TLS certificate is checked against, instead of the "
            "public roots: a private CA (the emulator's with --tls, an internal proxy's)."
        ),
    )

    @field_validator("ca_file")
    @classmethod
    def _holds_certificates(cls, value: FilePath | None) -> FilePath | None:
        if value is not None:
            try:
                ssl.create_default_context(cafile=value)
            except OSError as exc:  # ssl.SSLError included
                raise ValueError(f"no PEM certificate can be loaded from {value}: {exc}") from exc
        return value

    def tls_verify(self) -> ssl.SSLContext | bool:
        """What the HTTP client checks Auth0's certificate with (httpx's ``verify``).

        The CA file's certificates when set, read now; else True, httpx's own default.
        """
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=self.ca_file)

    @property
    def base_url(self) -> str:
        """The tenant's origin without a trailing slash (``https://acme-dev.auth0.com``)."""
        if self.domain is None:
            raise ValueError("GATEWAY_AUTH0__DOMAIN is not set")
        if "://" in self.domain:
            return self.domain.rstrip("/")
        return f"https://{self.domain.strip('/')}"

    @property
    def issuer(self) -> str:
        """The ``iss`` claim of the tenant's tokens: the origin with a trailing slash."""
        return f"{self.base_url}/"

    @property
    def management_audience(self) -> str:
        """The audience of the tenant's Management API."""
        return f"{self.issuer}api/v2/"


class CacheSettings(BaseModel):
    """Where principals and sessions are cached."""

    url: str = Field(
        default="memory://",
        description=(
            "memory://, memcached://host:port, or a pool memcached://h1:11211,h2:11211,... "
            "(keys spread by rendezvous hashing; a twemproxy endpoint is one host)"
        ),
    )
    namespace: str | None = Field(
        default=None, description="Key prefix; defaults to vg-<environment>."
    )
    timeout_s: float = Field(default=0.25, gt=0, le=10)
    pool_size: int = Field(default=32, ge=1, le=1024)
    breaker_threshold: int = Field(
        default=3,
        ge=1,
        le=1000,
        description=(
            "Consecutive memcached commands that time out before the circuit breaker opens: "
            "then every operation is answered as a miss at once, without waiting for memcached."
        ),
    )
    breaker_cooldown_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description=(
            "While the breaker is open, one background probe (version) every this many seconds; "
            "the first one answered closes the breaker."
        ),
    )
    local_ttl_s: float = Field(default=5.0, ge=0, le=300)
    local_max_entries: int = Field(default=10_000, ge=0)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in {"memory", "memcached"}:
            raise ValueError("cache url must be memory:// or memcached://host:port")
        if scheme == "memcached":
            memcached_nodes(value)
        return value

    @property
    def backend(self) -> str:
        """The URL's scheme: ``memcached`` or ``memory``."""
        return urlsplit(self.url).scheme

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """The memcached nodes the URL lists, as (host, port); empty for memory://."""
        if self.backend != "memcached":
            return []
        return memcached_nodes(self.url)


DEFAULT_MEMCACHED_PORT = 11211


def memcached_nodes(url: str) -> list[tuple[str, int]]:
    """The (host, port) pairs of ``memcached://h1[:port],h2[:port],...``: ValueError when bad.

    Hosts may be names, IPv4 or bracketed IPv6 addresses (``[::1]:11211``); the port is 11211
    when omitted. A host listed twice is an error: it would take two shares of the keys.
    """
    parts = urlsplit(url)
    if parts.scheme != "memcached":
        raise ValueError("expected memcached://host:port")
    if parts.path.strip("/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("memcached url takes only hosts: memcached://h1:11211,h2:11211")
    nodes: list[tuple[str, int]] = []
    for item in parts.netloc.split(","):
        item = item.strip()
        if not item:
            raise ValueError("memcached url needs a host: memcached://host:port")
        one = urlsplit(f"//{item}")
        try:
            port = one.port
        except ValueError:
            raise ValueError(f"memcached node {item!r}: the port must be 1-65535") from None
        if not one.hostname or port == 0:
            raise ValueError(f"memcached node {item!r}: expected host:port")
        port = port or DEFAULT_MEMCACHED_PORT
        node = (one.hostname, port)
        if node in nodes:
            raise ValueError(f"memcached node {item!r} is listed twice")
        nodes.append(node)
    return nodes


class SessionSettings(BaseModel):
    """How refresh tokens are kept on the server."""

    keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Fernet keys, newest first; older ones still decrypt (rotation).",
    )
    lifetime_s: int = Field(default=2_592_000, ge=60, le=31_557_600)
    refresh_grace_s: int = Field(default=30, ge=0, le=300)
    revocation_sync_s: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description=(
            "How often each worker reads new revocations from the database (with PostgreSQL "
            "a NOTIFY also wakes it at once): the longest a logout takes to reach a worker."
        ),
    )
    prune_interval_s: int = Field(
        default=3600,
        ge=0,
        description="How often expired sessions and revocations are removed; 0: never (cron).",
    )
    refresh_after_expiry_s: int = Field(
        default=86_400,
        ge=0,
        le=604_800,
        description=(
            "How long after its exp an access token may still be traded for a new one; "
            "older: 401 invalid_grant (log in again). Bounds what a stolen expired token is "
            "worth, and is the idle limit of a browser session."
        ),
    )

    _split = field_validator("keys", mode="before")(_split_list)


class BrowserSettings(BaseModel):
    """Cookie mode: the session cookie of browsers (``POST /auth/session``)."""

    cookie_secure: bool = Field(
        default=True,
        description=(
            "Mark the cookie Secure and give it the __Host- prefix. Browsers accept Secure "
            "cookies from http://localhost and http://127.0.0.1; off only for plain http on "
            "another host, and only in local."
        ),
    )
    cookie_name: str = Field(
        default="vg_session",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The cookie's name; __Host- is put in front when cookie_secure is on.",
    )
    same_site: Literal["strict", "lax"] = Field(
        default="strict",
        description=(
            "The cookie's SameSite. strict: no cross-site request carries it. lax: top-level "
            "cross-site navigations (GET) carry it too."
        ),
    )
    refresh_margin_s: int = Field(
        default=30,
        ge=0,
        le=600,
        description=(
            "A cookie request whose access token expires within this many seconds is "
            "refreshed first."
        ),
    )

    @property
    def cookie(self) -> str:
        """The cookie's full name, with ``__Host-`` when the cookie is Secure."""
        return f"__Host-{self.cookie_name}" if self.cookie_secure else self.cookie_name


class DatabaseSettings(BaseModel):
    """The venue database."""

    url: str = Field(
        default="sqlite+aiosqlite:///./venue-gateway.db",
        description="sqlite+aiosqlite:///FILE or postgresql+asyncpg://user:password@host/db.",
    )
    pool_size: int = Field(
        default=10, ge=1, le=100, description="PostgreSQL connections kept open per process."
    )
    # No overflow by default: under a steady load above the pool, SQLAlchemy opens overflow
    # connections and closes them again as they come back, a TCP and TLS handshake and a
    # PostgreSQL start-up for a few requests each (a tenth of the CPU of a venue read in the
    # benchmark); waiting a moment for a pooled connection is cheaper.
    max_overflow: int = Field(
        default=0, ge=0, le=100, description="PostgreSQL connections opened beyond the pool."
    )
    pool_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="How long a request waits for a connection."
    )
    pool_recycle_s: float = Field(
        default=300.0, gt=0, description="PostgreSQL connections older than this are replaced."
    )
    echo: bool = Field(default=False, description="Log every SQL statement.")
    timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="The longest a session-store operation waits for the database.",
    )

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError("database url must look like scheme://...")
        # the async drivers are the only ones installed; accept the common plain spellings
        drivers = {
            "postgres": "postgresql+asyncpg",
            "postgresql": "postgresql+asyncpg",
            "postgresql+asyncpg": "postgresql+asyncpg",
            "sqlite": "sqlite+aiosqlite",
            "sqlite+aiosqlite": "sqlite+aiosqlite",
        }
        driver = drivers.get(scheme.lower())
        if driver is None:
            raise ValueError("database url must be sqlite+aiosqlite:// or postgresql+asyncpg://")
        if driver == "sqlite+aiosqlite" and rest.strip("/") in {"", ":memory:"}:
            raise ValueError("an in-memory SQLite database is not supported; name a file")
        return f"{driver}://{rest}"

    @property
    def is_sqlite(self) -> bool:
        """True for an SQLite file."""
        return self.url.startswith("sqlite")


#: The shortest introspection secret accepted: 32 characters, as a random 24-byte value in base64.
MIN_INTROSPECTION_SECRET_CHARS = 32


class IntrospectionSettings(BaseModel):
    """Internal services allowed to call ``POST /tokens/introspect`` (HTTP Basic)."""

    # an error about a secret must not print it
    model_config = ConfigDict(hide_input_in_errors=True)

    clients: dict[str, SecretStr] = Field(default_factory=dict)
    failures_per_client_per_minute: int = Field(
        default=10,
        ge=0,
        description="Failed Basic authentications per client id per minute before 429; 0: off.",
    )
    failures_per_ip_per_minute: int = Field(
        default=30,
        ge=0,
        description="Failed Basic authentications per client IP per minute before 429; 0: off.",
    )

    @field_validator("clients")
    @classmethod
    def _long_secrets(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        short = [
            name for name, secret in value.items() if len(secret) < MIN_INTROSPECTION_SECRET_CHARS
        ]
        if short:
            raise ValueError(
                f"introspection secrets must be at least {MIN_INTROSPECTION_SECRET_CHARS} "
                f"characters; too short for: {', '.join(sorted(short))}"
            )
        return value


class UsersSettings(BaseModel):
    """User management through the Auth0 Management API (``/users``)."""

    signup_per_ip_per_hour: int = Field(
        default=10, ge=0, description="Sign-ups per client IP per hour, all workers; 0: no limit."
    )
    interactive_retry_wait_s: float = Field(
        default=2.0, ge=0, le=30, description="Longest wait on a Management 429 in sign-up/self."
    )
    admin_retry_wait_s: float = Field(
        default=15.0, ge=0, le=120, description="Longest wait on a Management 429 in admin routes."
    )


class ServerSettings(BaseModel):
    """Limits on each HTTP connection, applied by the server before a request reaches the app."""

    max_header_bytes: int = Field(
        default=32_768,
        ge=1_024,
        le=1_048_576,
        description="The request line and header lines of one request, in bytes; beyond: 431.",
    )
    max_header_count: int = Field(
        default=100, ge=1, le=10_000, description="Header lines in one request; beyond: 431."
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description=(
            "How long a new connection, or a request once begun, may take to send its whole "
            "header: then 408 and the connection is closed (closed silently if nothing came)."
        ),
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long a request's body may take to arrive after its header; then closed.",
    )


class Settings(BaseSettings):
    """Everything the gateway is configured with."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
        secrets_prefix="GATEWAY_",
        secrets_nested_delimiter="__",
        # settings hold secrets: a validation error names the field, never echoes the value
        hide_input_in_errors=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Secrets files are named like the variables: ``GATEWAY_AUTH0__CLIENT_SECRET``."""
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            NestedSecretsSettingsSource(file_secret_settings),
        )

    env: Environment = Environment.LOCAL
    company: str | None = Field(
        default=None, description="Names the tenants: https://<company>-<env>.auth0.com."
    )
    auth0: Auth0Settings = Field(default_factory=Auth0Settings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    browser: BrowserSettings = Field(default_factory=BrowserSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    introspection: IntrospectionSettings = Field(default_factory=IntrospectionSettings)
    users: UsersSettings = Field(default_factory=UsersSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    trusted_proxies: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = (
        Field(default_factory=list)
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    docs_enabled: bool | None = None
    log_level: str = "INFO"
    metrics_enabled: bool = Field(default=True, description="Serve GET /metrics (Prometheus).")

    _split = field_validator("trusted_proxies", "cors_origins", mode="before")(_split_list)

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        return [_origin(item) for item in value]

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @model_validator(mode="after")
    def _environment_defaults(self) -> Self:
        auth0 = self.auth0
        if self.env is Environment.LOCAL:
            auth0.domain = auth0.domain or LOCAL_EMULATOR_URL
            auth0.client_id = auth0.client_id or LOCAL_CLIENT_ID
            auth0.client_secret = auth0.client_secret or SecretStr(LOCAL_CLIENT_SECRET)
            auth0.audience = auth0.audience or LOCAL_AUDIENCE
        elif auth0.domain is None and self.company:
            auth0.domain = f"{self.company}-{self.env.value}.auth0.com"
        if self.cache.namespace is None:
            self.cache.namespace = f"vg-{self.env.value}"
        if self.docs_enabled is None:
            self.docs_enabled = self.env is not Environment.PROD
        if self.env is Environment.LOCAL and "cors_origins" not in self.model_fields_set:
            self.cors_origins = list(LOCAL_CORS_ORIGINS)
        if self.env is not Environment.LOCAL:
            self._check_deployed()
        return self

    def _check_deployed(self) -> None:
        auth0 = self.auth0
        missing = [
            name
            for name, value in (
                ("GATEWAY_AUTH0__DOMAIN (or GATEWAY_COMPANY)", auth0.domain),
                ("GATEWAY_AUTH0__CLIENT_ID", auth0.client_id),
                ("GATEWAY_AUTH0__CLIENT_SECRET", auth0.client_secret),
                ("GATEWAY_AUTH0__AUDIENCE", auth0.audience),
                ("GATEWAY_SESSION__KEYS", self.session.keys),
                # memory:// is per process: sessions, logouts and refreshes would not be shared
                ("GATEWAY_CACHE__URL (memcached://host:port)", self.cache.url != "memory://"),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"{self.env.value} needs: {', '.join(missing)}")
        if not self.browser.cookie_secure:
            raise ValueError(f"{self.env.value} refuses GATEWAY_BROWSER__COOKIE_SECURE=false")
        parts = urlsplit(auth0.base_url)
        if parts.scheme != "https":
            raise ValueError(f"{self.env.value} refuses a plain-http Auth0 domain ({auth0.domain})")
        # CORS answers with credentials: a page on a plain-http origin, which anyone on its
        # network path can rewrite, would ride the session cookie
        plain = [o for o in self.cors_origins if o.startswith("http://")]
        plain = [o for o in plain if not is_loopback(urlsplit(o).hostname or "")]
        if plain:
            raise ValueError(
                f"{self.env.value} refuses plain-http CORS origins (credentials are allowed "
                f"for them): {', '.join(plain)}"
            )
        if self.env is Environment.PROD and is_loopback(parts.hostname or ""):
            raise ValueError("prod refuses an Auth0 domain on a loopback address (the emulator)")
        if self.env is Environment.PROD and self.database.is_sqlite:
            raise ValueError(
                "prod refuses an SQLite database; set GATEWAY_DATABASE__URL=postgresql+asyncpg://..."
            )

    @property
    def is_local(self) -> bool:
        """True when the gateway runs against the emulator."""
        return self.env is Environment.LOCAL

    @property
    def cache_namespace(self) -> str:
        """The prefix of every cache key."""
        return self.cache.namespace or f"vg-{self.env.value}"


def _origin(value: str) -> str:
    """An exact browser origin (``https://app.example.com[:port]``); a trailing slash is dropped.

    A wildcard is refused: each environment names the SPA origins it serves.
    """
    text = value.strip().rstrip("/").lower()  # browsers send origins in lower case
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"CORS origin must be http(s)://host[:port], not {value!r}")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"CORS origin must have no path, query or credentials: {value!r}")
    return text


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (where the emulator runs)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment (and ``GATEWAY_SECRETS_DIR``, when set)."""
    secrets_dir = os.environ.get("GATEWAY_SECRETS_DIR")
    if secrets_dir:
        return Settings(_secrets_dir=secrets_dir, **overrides)
    return Settings(**overrides)
