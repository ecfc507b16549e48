"""The emulator's tenant: its configuration and everything it remembers, in memory.

A :class:`Tenant` is loaded from a JSON tenant file (format in the README, demo in
``demo_tenant.json``) and owns the signing keys, the clock, the refresh-token families and the
counters behind the rate limits and brute-force protection. The HTTP layers
(:mod:`emulator.authentication`, :mod:`emulator.management`, :mod:`emulator.control`) only read
and change it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

PASSWORD_REALM_GRANT = "http://auth0.com/oauth/grant-type/password-realm"
MANAGEMENT_SCOPES = [
    "read:users",
    "create:users",
    "update:users",
    "delete:users",
    "read:roles",
    "read:clients",
    "create:clients",
    "update:clients",
    "delete:clients",
    "read:client_grants",
    "create:client_grants",
    "update:client_grants",
    "delete:client_grants",
    "read:resource_servers",
    "create:resource_servers",
    "update:resource_servers",
    "delete:resource_servers",
    "read:tenant_settings",
    "update:tenant_settings",
]

DAY_S = 86_400
#: Auth0 lifts a brute-force block this long after the last failed login that fed it: the
#: default of the tenant file's ``limits.brute_force_block_s``.
BRUTE_FORCE_BLOCK_S = 30 * DAY_S

# Cheap parameters: the emulator hashes for realism, not for resistance to offline attack.
_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


def iso_utc(ts: float) -> str:
    """Auth0's timestamp format: ISO-8601 with milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def hash_password(password: str) -> str:
    """Hash a password for storage."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches the stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


# OWASP's special characters, as Auth0's password-sheriff counts them.
_SPECIAL_CHARACTERS = frozenset(" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def password_meets_policy(policy: str, password: str) -> bool:
    """Auth0's password strength levels (``none`` ... ``excellent``); unknown names mean none.

    none: at least 1 character; low: 6; fair: 8 with lower case, upper case and digits;
    good: 8 with 3 of lower/upper/digit/special; excellent: 10, as good, and no character
    more than twice in a row.
    """
    min_length = {"low": 6, "fair": 8, "good": 8, "excellent": 10}.get(policy, 1)
    if len(password) < min_length:
        return False
    kinds = [
        any("a" <= c <= "z" for c in password),
        any("A" <= c <= "Z" for c in password),
        any("0" <= c <= "9" for c in password),
        any(c in _SPECIAL_CHARACTERS for c in password),
    ]
    if policy == "fair" and not all(kinds[:3]):
        return False
    if policy in {"good", "excellent"} and sum(kinds) < 3:
        return False
    if policy == "excellent":
        run = 1
        for before, current in itertools.pairwise(password):
            run = run + 1 if current == before else 1
            if run > 2:
                return False
    return True


@dataclass
class SigningKey:
    """One RSA key with its JWK (``kid``, ``x5t``, ``x5c``)."""

    kid: str
    private_key: rsa.RSAPrivateKey
    jwk: dict[str, Any]

    @classmethod
    def generate(cls) -> SigningKey:
        """Make a fresh 2048-bit key with a self-signed certificate, as Auth0 publishes."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulator.local")])
        now = datetime.now(tz=UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        numbers = key.public_key().public_numbers()
        kid = _b64url(hashlib.sha256(der).digest()[:16])
        jwk = {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "kid": kid,
            "x5t": _b64url(hashlib.sha1(der, usedforsecurity=False).digest()),
            "x5c": [base64.b64encode(der).decode()],
        }
        return cls(kid=kid, private_key=key, jwk=jwk)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    """Unpadded base64url, strictly (``ValueError`` for anything else)."""
    if not set(text) <= _B64URL_ALPHABET:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass
class Connection:
    """A database connection (strategy ``auth0``)."""

    name: str
    id: str = field(default_factory=lambda: "con_" + secrets.token_hex(8))
    strategy: str = "auth0"
    password_policy: str = "fair"  # none | low | fair | good | excellent, as Auth0 names them
    requires_username: bool = False

    def accepts_password(self, password: str) -> bool:
        """True when ``password`` satisfies this connection's password policy."""
        return password_meets_policy(self.password_policy, password)


@dataclass
class ResourceServer:
    """An API (``audience``)."""

    identifier: str
    name: str
    id: str = field(default_factory=lambda: secrets.token_hex(12))
    scopes: list[dict[str, str]] = field(default_factory=list)
    signing_alg: str = "RS256"
    allow_offline_access: bool = False
    token_lifetime: int = 86400
    token_lifetime_for_web: int = 7200
    enforce_policies: bool = False
    token_dialect: str = "access_token"
    skip_consent_for_verifiable_first_party_clients: bool = True
    is_system: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # fields the emulator only echoes

    @property
    def scope_values(self) -> list[str]:
        """The permission names this API defines."""
        return [s["value"] for s in self.scopes]

    @property
    def signing_secret(self) -> str:
        """The HS256 secret of this API's tokens, made when first needed (kept in ``extra``)."""
        secret = self.extra.get("signing_secret")
        if not isinstance(secret, str):
            secret = secrets.token_urlsafe(24)
            self.extra["signing_secret"] = secret
        return secret


@dataclass
class Client:
    """An application."""

    client_id: str
    client_secret: str
    name: str
    app_type: str = "regular_web"
    token_endpoint_auth_method: str = "client_secret_post"
    grant_types: list[str] = field(default_factory=list)
    is_token_endpoint_ip_header_trusted: bool = False
    is_first_party: bool = True
    oidc_conformant: bool = True
    jwt_configuration: dict[str, Any] = field(
        default_factory=lambda: {"alg": "RS256", "lifetime_in_seconds": 36000}
    )
    refresh_token: dict[str, Any] = field(
        default_factory=lambda: {
            "rotation_type": "non-rotating",
            "expiration_type": "non-expiring",
            "leeway": 0,
            "token_lifetime": 2_592_000,
            "infinite_token_lifetime": True,
            "idle_token_lifetime": 1_296_000,
            "infinite_idle_token_lifetime": True,
        }
    )
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rotates_refresh_tokens(self) -> bool:
        """True when every exchange returns a new refresh token."""
        return self.refresh_token.get("rotation_type") == "rotating"


@dataclass
class ClientGrant:
    """Permission for a client to get ``client_credentials`` tokens for an audience."""

    client_id: str
    audience: str
    scope: list[str]
    id: str = field(default_factory=lambda: "cgr_" + secrets.token_hex(8))
    extra: dict[str, Any] = field(default_factory=dict)  # fields the emulator only echoes


@dataclass
class User:
    """A user of a database connection."""

    user_id: str
    email: str
    connection: str
    password_hash: str
    created_at: float
    updated_at: float
    email_verified: bool = False
    username: str | None = None
    name: str | None = None
    nickname: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    picture: str | None = None
    phone_number: str | None = None
    blocked: bool = False
    user_metadata: dict[str, Any] = field(default_factory=dict)
    app_metadata: dict[str, Any] = field(default_factory=dict)
    last_login: float | None = None
    logins_count: int = 0
    # (resource server identifier, permission name)
    permissions: list[tuple[str, str]] = field(default_factory=list)
    roles: list[dict[str, str]] = field(default_factory=list)
    # Emulator-only switches, settable in the tenant file: a correct password then gets
    # 403 mfa_required / 401 password_leaked instead of tokens.
    mfa_required: bool = False
    password_leaked: bool = False

    def permissions_for(self, audience: str) -> list[str]:
        """The user's permissions on one API."""
        return [name for api, name in self.permissions if api == audience]


@dataclass
class RefreshToken:
    """One issued refresh token; a family shares ``family_id`` (one login's lineage)."""

    token: str
    family_id: str
    client_id: str
    user_id: str
    audience: str | None
    scope: str
    issued_at: float
    expires_at: float | None
    idle_expires_at: float | None
    rotating: bool
    used_at: float | None = None
    revoked: bool = False


@dataclass
class TokenBucket:
    """A rate limit: ``burst`` tokens, refilled at ``per_second``; ``enabled`` off lets all in."""

    burst: int
    per_second: float
    enabled: bool = True
    _level: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str, now: float) -> tuple[bool, int, int]:
        """Spend one token for ``key``: (allowed, remaining, reset epoch seconds)."""
        level = self._refilled(key, now)
        allowed = not self.enabled or level >= 1.0
        if allowed and self.enabled:
            level -= 1.0
        self._level[key] = (level, now)
        missing = float(self.burst) - level
        reset = int(now + (missing / self.per_second if self.per_second > 0 else 0)) + 1
        return allowed, int(level), reset

    def peek(self, key: str, now: float) -> bool:
        """True when ``key`` has a token to spend (or the limit is off); spends nothing."""
        return not self.enabled or self._refilled(key, now) >= 1.0

    def reset(self) -> None:
        """Fill every bucket again."""
        self._level.clear()

    def _refilled(self, key: str, now: float) -> float:
        level, last = self._level.get(key, (float(self.burst), now))
        return min(float(self.burst), level + max(0.0, now - last) * self.per_second)

    @property
    def per_minute(self) -> int:
        """The sustained rate as Auth0 states it in ``X-RateLimit-Limit``."""
        return round(self.per_second * 60)


@dataclass
class LoginFailures:
    """Failed logins in a row to one user from one IP: brute-force protection's counter."""

    identifier: str  # the login name the attempts used, as /api/v2/user-blocks lists it
    connection: str
    count: int = 0
    last_failure: float = 0.0


@dataclass
class ListLimits:
    """How far the Management API's lists reach; Auth0 Public Cloud's values by default.

    The tenant file's ``limits`` may set each (``management_per_page_max``,
    ``management_unpaginated_max``, ``users_listed_max``), e.g. to Private Cloud's 100 a page.
    """

    per_page_max: int = 50
    """``per_page`` (and ``take``) at most: docs ``api/management/v2``, "Offset-Based
    Pagination" (100 on Private Cloud)."""
    unpaginated_max: int = 50
    """Items of a list asked for without ``page`` and ``per_page``: docs
    ``troubleshoot/product-lifecycle/past-migrations/migrate-to-paginated-queries``."""
    users_listed_max: int = 1000
    """Users a list or search reaches, paging included: docs
    ``manage-users/user-search/view-search-results-by-page``, "Limitation"."""


@dataclass
class Fault:
    """Make the next ``count`` calls to ``path`` answer ``status`` after ``delay_ms``."""

    path: str
    status: int | None
    count: int
    delay_ms: int = 0
    body: Any = None  # JSON body of the injected answer; None picks a default error body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class TenantSettings:
    """The tenant-wide settings of ``/api/v2/tenants/settings``."""

    default_directory: str | None = None
    default_audience: str | None = None
    friendly_name: str = "Emulated tenant"
    session_lifetime: int = 168
    idle_session_lifetime: int = 72
    flags: dict[str, bool] = field(
        default_factory=lambda: {"revoke_refresh_token_grant": False, "remove_alg_from_jwks": False}
    )
    extra: dict[str, Any] = field(default_factory=dict)  # fields the emulator only echoes


class Tenant:
    """One emulated Auth0 tenant, all in memory."""

    def __init__(self, issuer: str) -> None:
        if not issuer.endswith("/"):
            issuer += "/"
        self.issuer = issuer
        self.settings = TenantSettings()
        self.connections: dict[str, Connection] = {}
        self.resource_servers: dict[str, ResourceServer] = {}  # by identifier
        self.clients: dict[str, Client] = {}
        self.client_grants: dict[str, ClientGrant] = {}
        self.users: dict[str, User] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        # Signing keys as Auth0 publishes them: the current one signs, the next one is
        # published ahead of a rotation, the previous one stays until it is revoked.
        self.current_key = SigningKey.generate()
        self._next_key: SigningKey | None = None  # made on first use: RSA keys are slow to make
        self._next_key_lock = threading.Lock()  # the app's thread and the tests' may both ask
        self.previous_key: SigningKey | None = None
        # The tenant's secret for the encrypted access tokens issued without an audience.
        self.userinfo_token_key = AESGCM.generate_key(bit_length=256)
        self.clock_offset_s = 0.0
        self.faults: list[Fault] = []
        self.requests: dict[str, int] = {}
        self.grants: dict[str, int] = {}
        self.brute_force_threshold = 10
        self.brute_force_block_s = BRUTE_FORCE_BLOCK_S
        self.list_limits = ListLimits()
        self.failed_logins: dict[tuple[str, str], LoginFailures] = {}  # by (user_id, ip)
        # Auth0's defaults: 20 logins a minute from one IP to one account, then 10 a minute;
        # 100 failed logins a day from one IP, across accounts, refilled evenly over the day.
        self.same_user_login_limit = TokenBucket(burst=20, per_second=10 / 60)
        self.suspicious_ip_limit = TokenBucket(burst=100, per_second=100 / DAY_S)
        self.userinfo_limit = TokenBucket(burst=10, per_second=5 / 60)
        self.management_limit = TokenBucket(burst=2, per_second=2.0)
        self.resource_servers[self.management_audience] = ResourceServer(
            identifier=self.management_audience,
            name="Auth0 Management API",
            scopes=[{"value": s, "description": s} for s in MANAGEMENT_SCOPES],
            token_lifetime=86400,
            is_system=True,
        )

    # -- time and keys -------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's clock (wall clock plus the offset set through ``/__emulator/clock``)."""
        return time.time() + self.clock_offset_s

    @property
    def management_audience(self) -> str:
        """``<issuer>api/v2/``."""
        return f"{self.issuer}api/v2/"

    @property
    def userinfo_audience(self) -> str:
        """``<issuer>userinfo``, added to ``aud`` when ``openid`` is granted."""
        return f"{self.issuer}userinfo"

    @property
    def next_key(self) -> SigningKey:
        """The key published ahead of the next rotation, which will then sign."""
        with self._next_key_lock:
            if self._next_key is None:
                self._next_key = SigningKey.generate()
            return self._next_key

    @property
    def keys(self) -> list[SigningKey]:
        """The published key set: the current key, the next one, the previous one if kept."""
        published = [self.current_key, self.next_key]
        if self.previous_key is not None:
            published.append(self.previous_key)
        return published

    @keys.setter
    def keys(self, keys: list[SigningKey]) -> None:
        """Replace the whole key set: the first key signs, the second (or a new one) is next."""
        self.current_key = keys[0]
        with self._next_key_lock:
            self._next_key = keys[1] if len(keys) > 1 else None
        self.previous_key = keys[2] if len(keys) > 2 else None

    def rotate_keys(self) -> SigningKey:
        """Auth0's rotation: the next key signs from now on, the current one becomes the
        previous one (its tokens stay valid until it is revoked), and a new next key is made.
        Any earlier previous key is dropped. Returns the key that now signs."""
        with self._next_key_lock:
            promoted = self._next_key or SigningKey.generate()
            self._next_key = None
        self.previous_key = self.current_key
        self.current_key = promoted
        return promoted

    def replace_current_key(self) -> SigningKey:
        """Sign with a brand-new key that was never published (unlike :meth:`rotate_keys`).

        Clients learn of it only from a token that carries its ``kid``. The current key
        becomes the previous one; the next key stays. Returns the new key.
        """
        key = SigningKey.generate()
        self.previous_key = self.current_key
        self.current_key = key
        return key

    def revoke_previous_key(self) -> SigningKey | None:
        """Unpublish the previous key: tokens it signed are no longer valid. None if none."""
        revoked, self.previous_key = self.previous_key, None
        return revoked

    def jwks(self) -> dict[str, Any]:
        """The published key set."""
        drop_alg = self.settings.flags.get("remove_alg_from_jwks", False)
        return {
            "keys": [
                {k: v for k, v in key.jwk.items() if not (drop_alg and k == "alg")}
                for key in self.keys
            ]
        }

    def sign(
        self,
        claims: dict[str, Any],
        *,
        algorithm: str = "RS256",
        secret: str | None = None,
        typ: str = "JWT",
    ) -> str:
        """A JWT of ``claims``, header ``typ`` included.

        ``RS256`` (also ``RS512``, ``PS256``) signs with the current key and names it in
        ``kid``; ``HS256`` signs with ``secret`` (an API's signing secret) and has no ``kid``.
        """
        if algorithm == "HS256":
            if secret is None:
                raise ValueError("HS256 needs a secret")
            return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": typ})
        key = self.current_key
        return jwt.encode(
            claims, key.private_key, algorithm=algorithm, headers={"kid": key.kid, "typ": typ}
        )

    def encrypt_userinfo_token(self, claims: dict[str, Any]) -> str:
        """An access token for ``/userinfo`` alone, as Auth0 issues one without an audience.

        A compact JWE (RFC 7516): header ``{"alg": "dir", "enc": "A256GCM", "iss": ...}``, an
        empty encrypted key (``dir``), then IV, ciphertext and tag, five dot-separated parts.
        Only this tenant can read it (:meth:`decrypt_userinfo_token`).
        """
        header = {"alg": "dir", "enc": "A256GCM", "iss": self.issuer}
        protected = _b64url(json.dumps(header, separators=(",", ":")).encode())
        iv = secrets.token_bytes(12)
        plaintext = json.dumps(claims, separators=(",", ":")).encode()
        # RFC 7516 §5.1: the additional authenticated data is the encoded protected header.
        sealed = AESGCM(self.userinfo_token_key).encrypt(iv, plaintext, protected.encode())
        ciphertext, tag = sealed[:-16], sealed[-16:]
        return ".".join((protected, "", _b64url(iv), _b64url(ciphertext), _b64url(tag)))

    def decrypt_userinfo_token(self, token: str) -> dict[str, Any] | None:
        """The claims of a token :meth:`encrypt_userinfo_token` made, or None for any other."""
        parts = token.split(".")
        if len(parts) != 5 or parts[1]:
            return None
        try:
            header = json.loads(_b64decode(parts[0]))
            if header != {"alg": "dir", "enc": "A256GCM", "iss": self.issuer}:
                return None
            iv, ciphertext, tag = (_b64decode(part) for part in parts[2:])
            plaintext = AESGCM(self.userinfo_token_key).decrypt(
                iv, ciphertext + tag, parts[0].encode()
            )
            claims = json.loads(plaintext)
        except (ValueError, InvalidTag):
            return None
        return claims if isinstance(claims, dict) else None

    def verify(self, token: str, audience: str) -> dict[str, Any] | None:
        """The claims of a JWT this tenant issued for ``audience``, or None when invalid."""
        claims, _ = self.inspect_token(token, audience)
        return claims

    def inspect_token(self, token: str, audience: str) -> tuple[dict[str, Any] | None, str]:
        """Like :meth:`verify`, with the reason of a refusal: ``"invalid"`` or ``"expired"``.

        ``"expired"`` is only said of a token this tenant really signed for ``audience``.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None, "invalid"
        key = next((k for k in self.keys if k.kid == header.get("kid")), None)
        if key is None:
            return None, "invalid"
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=["RS256"],
                audience=audience,
                issuer=self.issuer,
                # the emulator's clock may run ahead (POST /__emulator/clock): expiry is checked
                # below against tenant.now(), not against the wall clock
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            return None, "invalid"
        if claims.get("exp", 0) <= self.now():
            return None, "expired"
        return claims, ""

    # -- lookups -------------------------------------------------------------------------------

    def user_by_email(self, connection: str, email: str) -> User | None:
        """The user of ``connection`` with this email (or username), case-insensitive."""
        wanted = email.casefold()
        for user in self.users.values():
            if user.connection == connection and wanted in {
                user.email.casefold(),
                (user.username or "").casefold(),
            }:
                return user
        return None

    def client_grant(self, client_id: str, audience: str) -> ClientGrant | None:
        """The grant letting ``client_id`` call ``audience`` with client credentials."""
        return next(
            (
                g
                for g in self.client_grants.values()
                if g.client_id == client_id and g.audience == audience
            ),
            None,
        )

    def add_user(self, *, email: str, password: str, connection: str, **fields: Any) -> User:
        """Create a user with a hashed password."""
        now = self.now()
        user = User(
            user_id=fields.pop("user_id", None) or f"auth0|{secrets.token_hex(12)}",
            email=email,
            connection=connection,
            password_hash=hash_password(password),
            created_at=now,
            updated_at=now,
            **fields,
        )
        user.name = user.name or email
        user.nickname = user.nickname or email.split("@", 1)[0]
        user.picture = user.picture or (
            "https://s.gravatar.com/avatar/"
            + hashlib.md5(email.casefold().encode(), usedforsecurity=False).hexdigest()
            + "?s=480&r=pg&d=mp"
        )
        self.users[user.user_id] = user
        return user

    # -- refresh tokens ------------------------------------------------------------------------

    def issue_refresh_token(
        self,
        *,
        client: Client,
        user_id: str,
        audience: str | None,
        scope: str,
        family_id: str | None = None,
        absolute_expiry: float | None = None,
    ) -> RefreshToken:
        """Mint a refresh token; a rotation keeps the family and its absolute expiry."""
        policy = client.refresh_token
        now = self.now()
        if family_id is None:
            family_id = uuid.uuid4().hex
            if policy.get("infinite_token_lifetime", False):
                absolute_expiry = None
            else:
                absolute_expiry = now + int(policy.get("token_lifetime", 2_592_000))
        token = RefreshToken(
            token="v1." + secrets.token_urlsafe(48),
            family_id=family_id,
            client_id=client.client_id,
            user_id=user_id,
            audience=audience,
            scope=scope,
            issued_at=now,
            expires_at=absolute_expiry,
            idle_expires_at=_idle_expiry(policy, now),
            rotating=client.rotates_refresh_tokens,
        )
        self.refresh_tokens[token.token] = token
        self._cap_refresh_tokens(client.client_id, user_id)
        return token

    def _cap_refresh_tokens(self, client_id: str, user_id: str, limit: int = 200) -> None:
        live = [
            t
            for t in self.refresh_tokens.values()
            if t.client_id == client_id and t.user_id == user_id and self.is_live(t)
        ]
        for old in sorted(live, key=lambda t: t.issued_at)[: max(0, len(live) - limit)]:
            old.revoked = True

    def is_live(self, token: RefreshToken) -> bool:
        """Not revoked, not expired, and (when rotating) not already used."""
        if token.revoked or self.refresh_token_expired(token):
            return False
        return token.used_at is None or not token.rotating

    def refresh_token_expired(self, token: RefreshToken) -> bool:
        """Past its absolute or its idle (inactivity) lifetime."""
        now = self.now()
        return any(
            limit is not None and now >= limit
            for limit in (token.expires_at, token.idle_expires_at)
        )

    def renew_refresh_token(self, token: RefreshToken, client: Client) -> None:
        """Restart the idle lifetime after an exchange, under the client's current policy."""
        token.idle_expires_at = _idle_expiry(client.refresh_token, self.now())

    def revoke_family(self, family_id: str) -> None:
        """Revoke every token of one lineage (reuse detection, or revocation of the grant)."""
        for token in self.refresh_tokens.values():
            if token.family_id == family_id:
                token.revoked = True

    def family_of(self, family_id: str) -> Iterable[RefreshToken]:
        """Every token of one lineage, oldest first."""
        return sorted(
            (t for t in self.refresh_tokens.values() if t.family_id == family_id),
            key=lambda t: t.issued_at,
        )

    # -- brute-force protection ----------------------------------------------------------------

    def login_failures(self, user_id: str, ip: str) -> LoginFailures | None:
        """The failures counted against ``user_id`` from ``ip``, unless they have lapsed.

        Auth0 lifts a block 30 days (``brute_force_block_s``) after the last failed login; the
        count before a block lapses the same way.
        """
        failures = self.failed_logins.get((user_id, ip))
        if failures is not None and self.now() - failures.last_failure >= self.brute_force_block_s:
            del self.failed_logins[(user_id, ip)]
            return None
        return failures

    def brute_force_blocked(self, user_id: str, ip: str) -> bool:
        """True when ``ip`` may not log in as ``user_id`` (the threshold was reached)."""
        failures = self.login_failures(user_id, ip)
        return failures is not None and failures.count >= self.brute_force_threshold

    def count_failed_login(self, user: User, ip: str, identifier: str) -> None:
        """One more wrong password for ``user`` from ``ip``, tried as ``identifier``."""
        failures = self.login_failures(user.user_id, ip) or LoginFailures(
            identifier=identifier, connection=user.connection
        )
        failures.count += 1
        failures.last_failure = self.now()
        failures.identifier = identifier
        self.failed_logins[(user.user_id, ip)] = failures

    def brute_force_blocks(self, user_id: str) -> list[tuple[str, LoginFailures]]:
        """Every IP that is blocked from logging in as ``user_id``, with its counter."""
        return [
            (ip, self.failed_logins[(owner, ip)])
            for owner, ip in list(self.failed_logins)
            if owner == user_id and self.brute_force_blocked(owner, ip)
        ]

    def lift_brute_force_blocks(self, user_id: str) -> None:
        """Forget every failure counted against ``user_id``, from any IP."""
        for key in [key for key in self.failed_logins if key[0] == user_id]:
            del self.failed_logins[key]

    # -- counters ------------------------------------------------------------------------------

    def count_request(self, route: str) -> None:
        """Count one request for ``GET /__emulator/stats``."""
        self.requests[route] = self.requests.get(route, 0) + 1

    def count_grant(self, grant: str) -> None:
        """Count one successful token grant, by short name (``password``, ``refresh_token``)."""
        self.grants[grant] = self.grants.get(grant, 0) + 1

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: Path | None, issuer: str) -> Tenant:
        """Load a tenant file; ``None`` loads the demo tenant."""
        if path is None:
            text = resources.files("emulator").joinpath("demo_tenant.json").read_text()
        else:
            text = path.read_text()
        return cls.from_dict(json.loads(text), issuer)

    @classmethod
    def from_dict(cls, data: dict[str, Any], issuer: str) -> Tenant:
        """Build a tenant from the parsed tenant-file JSON; ``{issuer}`` expands anywhere."""
        tenant = cls(issuer)
        data = _expand_issuer(data, tenant.issuer)
        settings = data.get("settings", {})
        for name in ("default_directory", "default_audience", "friendly_name"):
            if name in settings:
                setattr(tenant.settings, name, settings[name])
        tenant.settings.flags.update(settings.get("flags", {}))
        limits = data.get("limits", {})
        tenant.brute_force_threshold = int(limits.get("brute_force_threshold", 10))
        tenant.brute_force_block_s = _positive(limits, "brute_force_block_s", BRUTE_FORCE_BLOCK_S)
        defaults = ListLimits()
        tenant.list_limits = ListLimits(
            per_page_max=_positive(limits, "management_per_page_max", defaults.per_page_max),
            unpaginated_max=_positive(
                limits, "management_unpaginated_max", defaults.unpaginated_max
            ),
            users_listed_max=_positive(limits, "users_listed_max", defaults.users_listed_max),
        )
        tenant.same_user_login_limit = TokenBucket(
            burst=int(limits.get("same_user_login_burst", 20)),
            per_second=float(limits.get("same_user_login_per_minute", 10)) / 60,
            enabled=bool(limits.get("same_user_login_enabled", True)),
        )
        tenant.suspicious_ip_limit = TokenBucket(
            burst=int(limits.get("suspicious_ip_max_attempts", 100)),
            per_second=float(limits.get("suspicious_ip_per_day", 100)) / DAY_S,
            enabled=bool(limits.get("suspicious_ip_enabled", True)),
        )
        tenant.userinfo_limit = TokenBucket(
            burst=int(limits.get("userinfo_burst", 10)),
            per_second=float(limits.get("userinfo_per_minute", 5)) / 60,
            enabled=bool(limits.get("userinfo_enabled", True)),
        )
        tenant.management_limit = TokenBucket(
            burst=int(limits.get("management_burst", 2)),
            per_second=float(limits.get("management_per_second", 2)),
            enabled=bool(limits.get("management_enabled", True)),
        )
        for raw in data.get("connections", []):
            conn = Connection(**raw)
            tenant.connections[conn.name] = conn
        for raw in data.get("resource_servers", []):
            raw = dict(raw)
            secret = raw.pop("signing_secret", None)
            api = ResourceServer(**raw)
            if secret is not None:
                api.extra["signing_secret"] = secret
            tenant.resource_servers[api.identifier] = api
        for raw in data.get("clients", []):
            raw = dict(raw)
            policy = raw.pop("refresh_token", None)
            client = Client(**raw)
            if policy:
                client.refresh_token.update(policy)
            tenant.clients[client.client_id] = client
        for raw in data.get("client_grants", []):
            grant = ClientGrant(**raw)
            tenant.client_grants[grant.id] = grant
        for raw in data.get("users", []):
            raw = dict(raw)
            perms = raw.pop("permissions", {})
            user = tenant.add_user(**raw)
            user.permissions = [(api, p) for api, names in perms.items() for p in names]
        return tenant


def _idle_expiry(policy: dict[str, Any], now: float) -> float | None:
    if policy.get("infinite_idle_token_lifetime", False):
        return None
    return now + int(policy.get("idle_token_lifetime", 2_592_000))


def _positive(limits: dict[str, Any], name: str, default: int) -> int:
    """The tenant file's ``limits.<name>``, a whole number of at least 1, or ``default``."""
    value = limits.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"limits.{name} must be a whole number of at least 1, not {value!r}")
    return value


def _expand_issuer(value: Any, issuer: str) -> Any:
    if isinstance(value, str):
        return value.replace("{issuer}", issuer)
    if isinstance(value, list):
        return [_expand_issuer(v, issuer) for v in value]
    if isinstance(value, dict):
        return {k: _expand_issuer(v, issuer) for k, v in value.items()}
    return value
