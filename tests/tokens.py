"""Real RS256 test tokens: a test signing key, its JWKS, and :func:`mint`.

The keys are generated once per test session (2048-bit: PyJWT warns on shorter RSA keys and
pytest turns warnings into errors).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm, get_default_algorithms

DOMAIN = "tenant.example.test"
ISSUER = f"https://{DOMAIN}/"
AUDIENCE = "https://api.venues.test"
USERINFO_AUDIENCE = f"{ISSUER}userinfo"
CLIENT_ID = "gateway-client-id"
SUB = "auth0|5f7c8ec7c33c6c004bbafe82"

KID = "test-key-1"
OTHER_KID = "test-key-2"

#: The tenant's signing key, published in :data:`JWKS` under :data:`KID`.
PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
#: Not in :data:`JWKS`: tokens signed with it fail (tests may publish it as a rotated key).
OTHER_PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

PUBLIC_KEY_PEM = PRIVATE_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def public_jwk(
    key: rsa.RSAPrivateKey = PRIVATE_KEY, kid: str = KID, *, alg: str | None = "RS256"
) -> dict[str, Any]:
    """The public half of ``key`` as Auth0 publishes it; ``alg=None`` drops ``alg``."""
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.pop("key_ops", None)
    jwk.update({"kid": kid, "use": "sig"})
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    """A JWKS document of ``keys`` (default: the test key)."""
    return {"keys": list(keys) if keys else [public_jwk()]}


#: The tenant's JWKS: the test key under :data:`KID`.
JWKS: dict[str, Any] = jwks()


def user_claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a valid user access token; ``None`` values drop a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": SUB,
        "aud": [AUDIENCE, USERINFO_AUDIENCE],
        "iat": now,
        "exp": now + 3600,
        "azp": CLIENT_ID,
        "scope": "openid profile email offline_access",
        "gty": "password",
        "permissions": ["read:venues", "create:venues"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(
    claims: dict[str, Any],
    *,
    key: rsa.RSAPrivateKey | bytes | str | None = PRIVATE_KEY,
    kid: str | None = KID,
    alg: str = "RS256",
    headers: dict[str, Any] | None = None,
) -> str:
    """A signed token for ``claims`` (see :func:`user_claims`).

    The header is ``{"alg", "typ": "JWT", "kid"}`` plus ``headers`` (which may override any
    of them, with values PyJWT itself would refuse to encode). RS*/PS* sign with ``key``
    through PyJWT's algorithms; ``HS256`` takes any bytes as the secret, the public key's PEM
    included (the algorithm-confusion attack); ``none`` gives an unsigned token.
    ``kid=None`` leaves ``kid`` out.
    """
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    header.update(headers or {})
    signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}".encode()
    if alg == "none":
        signature = b""
    elif alg == "HS256":
        secret = key.encode() if isinstance(key, str) else key
        assert isinstance(secret, bytes)
        signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    elif alg[:2] in ("RS", "PS"):
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = get_default_algorithms()[alg].sign(signing_input, key)
    else:
        raise ValueError(f"mint() cannot sign {alg}")
    return f"{signing_input.decode()}.{_b64(signature)}"


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
