"""Local validation of Auth0 access tokens (docs/emulator.md, "Discovery, keys and claims").

JWTs are checked here, against the cached JWKS, with no call to Auth0 beyond the key set:
RS256 only, ``iss`` with its trailing slash, ``aud`` as a string or a list, ``exp``/``nbf``/
``iat`` with a small leeway. Anything that is not even shaped like a token is rejected by
:meth:`TokenValidator.classify` before any I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

import jwt

from app.auth.principal import Principal
from app.clients.auth0_errors import MSG_EXPIRED, MSG_INVALID
from app.clients.jwks import JwksCache, UnknownKeyError
from app.http.errors import Unauthorized
from settings.model import Auth0Settings

log = logging.getLogger(__name__)

TokenKind = Literal["jwt", "opaque", "malformed"]

#: Longer bearer values are refused unread; Auth0 access tokens are far shorter.
MAX_TOKEN_LENGTH = 4096

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]*")
# Auth0's opaque (/userinfo-only) access tokens: base64url characters, no dots
_OPAQUE = re.compile(r"[A-Za-z0-9_-]{16,512}")
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_REQUIRED_CLAIMS = ["exp", "sub", "iss", "aud"]


class TokenValidator:
    """Classifies bearer values and validates Auth0 JWT access tokens locally."""

    def __init__(self, settings: Auth0Settings, jwks: JwksCache) -> None:
        """Validate against ``settings``' issuer, audience and leeway, with keys from ``jwks``."""
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._leeway = settings.leeway_s
        self._scopes_as_permissions = settings.scopes_as_permissions
        self._jwks = jwks

    @staticmethod
    def classify(token: str) -> TokenKind:
        """``"jwt"``, ``"opaque"`` or ``"malformed"``: pure and cheap, no I/O.

        A JWT is three base64url segments whose first decodes to a JSON object (the
        signature may be empty: ``alg: none`` tokens are then refused by :meth:`verify_jwt`).
        Opaque is a dotless base64url string, or the encrypted JWE Auth0 issues without an
        audience: five segments, the first a JSON header naming ``enc``, the second
        (the encrypted key, empty for ``alg: dir``) possibly empty. Only ``/userinfo`` can
        read either.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH or not _PRINTABLE_ASCII.fullmatch(token):
            return "malformed"
        if "." not in token:
            return "opaque" if _OPAQUE.fullmatch(token) else "malformed"
        parts = token.split(".")
        if len(parts) == 5:
            return "opaque" if _is_compact_jwe(parts) else "malformed"
        if (
            len(parts) != 3
            or not _SEGMENT.fullmatch(parts[0])
            or not _SEGMENT.fullmatch(parts[1])
            or not _SIGNATURE.fullmatch(parts[2])
        ):
            return "malformed"
        return "jwt" if _decode_header(parts[0]) is not None else "malformed"

    async def verify_jwt(
        self, token: str, *, allow_expired: bool = False, issued: bool = False
    ) -> dict[str, Any]:
        """The claims of a valid Auth0 access token; ``Unauthorized`` otherwise.

        ``exp`` and ``nbf`` are checked with ``leeway_s``; ``iat``, when present, must be a
        number. ``allow_expired`` skips only the ``exp`` check (refresh and logout take an
        expired access token); the signature, ``iss``, ``aud`` and ``nbf`` are still checked.
        An unreachable JWKS with nothing cached raises ``UpstreamUnavailable`` (503): the
        token may be fine, the gateway cannot tell. ``issued``: the token comes straight from
        Auth0's token endpoint (login, refresh), so an unknown ``kid`` may always refetch the key
        set (:class:`~app.clients.jwks.JwksCache` keeps a separate allowance for it).
        """
        if self.classify(token) != "jwt":
            raise _invalid("not a JWT")
        header = _decode_header(token.split(".", 1)[0])
        if header is None:  # classify() decoded it already; this narrows the type
            raise _invalid("undecodable header")
        # Refuse anything but RS256 before any key lookup: "none" and HS256 signed with the
        # public key as the HMAC secret are the classic algorithm-confusion attacks.
        if header.get("alg") != "RS256":
            raise _invalid("alg is not RS256")
        if "crit" in header:
            # RFC 7515 §4.1.11: understood extensions only, and Auth0 uses none
            raise _invalid("crit header")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise _invalid("no usable kid")
        if self._audience is None:
            log.error("GATEWAY_AUTH0__AUDIENCE is not set: every JWT access token is refused")
            raise _invalid("no audience configured")
        try:
            key = await self._jwks.get_key(kid, cause="issued" if issued else "presented")
        except UnknownKeyError:
            raise _invalid("unknown kid") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={
                    "require": _REQUIRED_CLAIMS,
                    "verify_exp": not allow_expired,
                    # iat is type-checked below, not compared with the clock: exp and nbf bound
                    # a token's life, a future iat only says the issuer's clock runs ahead (as
                    # auth0-python's TokenVerifier, which requires iat to be a number only)
                    "verify_iat": False,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized(MSG_EXPIRED) from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise _invalid(type(exc).__name__) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise _invalid("empty sub")
        # PyJWT compares int(exp): "exp": "1795000000" would pass; claims must have their types
        for name in ("exp", "nbf", "iat"):
            value = claims.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise _invalid(f"{name} is not a number")
        permissions = claims.get("permissions")
        if permissions is not None and (
            not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions)
        ):
            raise _invalid("permissions is not a list of strings")
        if "scope" in claims and not isinstance(claims["scope"], str):
            raise _invalid("scope is not a string")
        return claims

    def principal(
        self, claims: Mapping[str, Any], profile: Mapping[str, Any] | None = None
    ) -> Principal:
        """The principal of validated ``claims`` under this tenant's settings."""
        return self.principal_from_claims(
            claims, profile, scopes_as_permissions=self._scopes_as_permissions
        )

    @staticmethod
    def principal_from_claims(
        claims: Mapping[str, Any],
        profile: Mapping[str, Any] | None = None,
        *,
        scopes_as_permissions: bool = False,
    ) -> Principal:
        """The principal of validated ``claims``, with ``email``/``name`` from ``profile``.

        ``profile`` is a ``/userinfo`` answer; one for another ``sub`` is ignored.
        """
        sub = str(claims["sub"])
        raw_permissions = claims.get("permissions")
        permissions = (
            tuple(p for p in raw_permissions if isinstance(p, str))
            if isinstance(raw_permissions, list)
            else ()
        )
        raw_scope = claims.get("scope")
        if isinstance(raw_scope, str):
            scopes = tuple(raw_scope.split())
        elif isinstance(raw_scope, list):
            scopes = tuple(s for s in raw_scope if isinstance(s, str))
        else:
            scopes = ()
        if scopes_as_permissions:
            permissions = tuple(dict.fromkeys((*permissions, *scopes)))
        client_id = claims.get("azp", claims.get("client_id"))
        email = name = None
        if profile is not None:
            if profile.get("sub", sub) == sub:
                email = _str_or_none(profile.get("email"))
                name = _str_or_none(profile.get("name"))
            else:
                log.warning("ignoring a profile whose sub does not match the token's")
        return Principal(
            sub=sub,
            email=email,
            name=name,
            permissions=permissions,
            scopes=scopes,
            client_id=client_id if isinstance(client_id, str) else None,
            expires_at=int(claims["exp"]),
            issued_at=int(claims["iat"]) if "iat" in claims else None,
        )


def _invalid(reason: str) -> Unauthorized:
    # the reason is for debugging only; the answer is the same stable text for every failure
    log.debug("access token refused: %s", reason)
    return Unauthorized(MSG_INVALID)


def _is_compact_jwe(parts: list[str]) -> bool:
    """RFC 7516 compact form: header, encrypted key (may be empty), IV, ciphertext, tag."""
    header_segment, encrypted_key, *rest = parts
    if not _SEGMENT.fullmatch(header_segment) or not _SIGNATURE.fullmatch(encrypted_key):
        return False
    if not all(_SEGMENT.fullmatch(part) for part in rest):
        return False
    header = _decode_header(header_segment)
    return header is not None and isinstance(header.get("enc"), str)


def _decode_header(segment: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
