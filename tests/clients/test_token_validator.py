"""Local validation of real RS256 tokens against a JWKS served (by respx) at the tenant."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.clients.auth0 import Auth0AuthClient
from app.clients.jwks import JwksCache
from app.clients.token_validator import MAX_TOKEN_LENGTH, TokenValidator
from app.http.errors import Unauthorized, UpstreamUnavailable
from settings.model import Auth0Settings
from tests.tokens import (
    AUDIENCE,
    CLIENT_ID,
    DOMAIN,
    ISSUER,
    JWKS,
    OTHER_KID,
    OTHER_PRIVATE_KEY,
    PUBLIC_KEY_PEM,
    SUB,
    mint,
    user_claims,
)

LEEWAY_S = 10
INVALID = "The access token is invalid."
EXPIRED = "The access token has expired."


@dataclass
class Wired:
    validator: TokenValidator
    jwks: JwksCache
    router: respx.MockRouter
    jwks_route: respx.Route


def make_settings(**overrides: Any) -> Auth0Settings:
    values: dict[str, Any] = {
        "domain": DOMAIN,
        "client_id": CLIENT_ID,
        "client_secret": SecretStr("unused"),
        "audience": AUDIENCE,
        "leeway_s": LEEWAY_S,
    }
    values.update(overrides)
    return Auth0Settings(**values)


@pytest.fixture
async def wired() -> AsyncIterator[Wired]:
    settings = make_settings()
    async with httpx.AsyncClient() as http:
        with respx.mock(base_url=settings.base_url, assert_all_called=False) as router:
            route = router.get("/.well-known/jwks.json").respond(200, json=JWKS)
            jwks = JwksCache(Auth0AuthClient(http, settings).fetch_jwks, 600, 30)
            yield Wired(TokenValidator(settings, jwks), jwks, router, route)


async def rejected(wired: Wired, token: str, **kwargs: bool) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        await wired.validator.verify_jwt(token, **kwargs)
    error = caught.value
    assert type(error) is Unauthorized
    assert (error.status_code, error.code) == (401, "invalid_token")
    assert error.headers["WWW-Authenticate"].startswith("Bearer ")
    if len(token) >= 4:  # shorter strings (" ", "..") occur in any English sentence
        for text in (error.description, str(error), error.headers["WWW-Authenticate"]):
            assert token not in text
    return error


def now() -> int:
    return int(time.time())


class TestValid:
    async def test_aud_list(self, wired: Wired) -> None:
        claims = user_claims()
        assert isinstance(claims["aud"], list)
        assert await wired.validator.verify_jwt(mint(claims)) == claims
        assert wired.jwks_route.call_count == 1

    async def test_aud_string(self, wired: Wired) -> None:
        claims = user_claims(aud=AUDIENCE)
        assert await wired.validator.verify_jwt(mint(claims)) == claims

    async def test_m2m_token(self, wired: Wired) -> None:
        claims = user_claims(sub=f"{CLIENT_ID}@clients", gty="client-credentials", aud=AUDIENCE)
        assert (await wired.validator.verify_jwt(mint(claims)))["sub"] == f"{CLIENT_ID}@clients"

    async def test_key_without_alg_in_jwks(self, wired: Wired) -> None:
        wired.jwks_route.respond(
            200, json={"keys": [{k: v for k, v in JWKS["keys"][0].items() if k != "alg"}]}
        )
        await wired.validator.verify_jwt(mint(user_claims()))

    async def test_keys_are_cached_across_tokens(self, wired: Wired) -> None:
        for _ in range(5):
            await wired.validator.verify_jwt(mint(user_claims()))
        assert wired.jwks_route.call_count == 1

    async def test_at_jwt_typ(self, wired: Wired) -> None:
        await wired.validator.verify_jwt(mint(user_claims(), headers={"typ": "at+jwt"}))


class TestTime:
    async def test_expired(self, wired: Wired) -> None:
        token = mint(user_claims(iat=now() - 7200, exp=now() - 3600))
        assert (await rejected(wired, token)).description == EXPIRED

    async def test_expired_within_leeway_is_accepted(self, wired: Wired) -> None:
        await wired.validator.verify_jwt(mint(user_claims(exp=now() - LEEWAY_S + 3)))

    async def test_expired_just_beyond_leeway(self, wired: Wired) -> None:
        token = mint(user_claims(exp=now() - LEEWAY_S - 3))
        assert (await rejected(wired, token)).description == EXPIRED

    async def test_nbf_in_the_future(self, wired: Wired) -> None:
        token = mint(user_claims(nbf=now() + 120))
        assert (await rejected(wired, token)).description == INVALID

    async def test_nbf_within_leeway_is_accepted(self, wired: Wired) -> None:
        await wired.validator.verify_jwt(mint(user_claims(nbf=now() + LEEWAY_S - 3)))

    async def test_iat_in_the_future_is_only_skew(self, wired: Wired) -> None:
        # an issuer clock running ahead (the emulator's clock control does this) is no reason
        # to refuse; exp and nbf bound the token's life
        claims = user_claims(iat=now() + 7200, exp=now() + 10800)
        assert await wired.validator.verify_jwt(mint(claims)) == claims

    async def test_zero_leeway(self, wired: Wired) -> None:
        validator = TokenValidator(make_settings(leeway_s=0), wired.jwks)
        with pytest.raises(Unauthorized):
            await validator.verify_jwt(mint(user_claims(exp=now() - 3)))


class TestIssuerAndAudience:
    @pytest.mark.parametrize(
        "iss",
        [
            "https://evil.example.test/",
            f"https://{DOMAIN}",  # no trailing slash: Auth0's issuer has one
            f"http://{DOMAIN}/",
            f"https://{DOMAIN}//",
        ],
    )
    async def test_wrong_issuer(self, wired: Wired, iss: str) -> None:
        assert (await rejected(wired, mint(user_claims(iss=iss)))).description == INVALID

    @pytest.mark.parametrize(
        "aud",
        [
            "https://api.other.test",
            [f"{ISSUER}userinfo"],
            ["https://api.other.test", f"{ISSUER}userinfo"],
            f"{AUDIENCE}/",
            [],
            "",
        ],
    )
    async def test_wrong_audience(self, wired: Wired, aud: Any) -> None:
        await rejected(wired, mint(user_claims(aud=aud)))

    async def test_no_audience_configured_refuses_everything(self, wired: Wired) -> None:
        validator = TokenValidator(make_settings(audience=None), wired.jwks)
        with pytest.raises(Unauthorized):
            await validator.verify_jwt(mint(user_claims()))


class TestSignatureAndKeys:
    async def test_signed_with_another_key(self, wired: Wired) -> None:
        await rejected(wired, mint(user_claims(), key=OTHER_PRIVATE_KEY))

    async def test_tampered_payload(self, wired: Wired) -> None:
        header, _, signature = mint(user_claims()).split(".")
        forged = mint(user_claims(sub="auth0|admin")).split(".")[1]
        await rejected(wired, f"{header}.{forged}.{signature}")

    async def test_stripped_signature(self, wired: Wired) -> None:
        header, payload, _ = mint(user_claims()).split(".")
        await rejected(wired, f"{header}.{payload}.")

    async def test_unknown_kid(self, wired: Wired) -> None:
        await rejected(wired, mint(user_claims(), key=OTHER_PRIVATE_KEY, kid=OTHER_KID))

    async def test_jwks_unreachable_is_503_not_401(self, wired: Wired) -> None:
        wired.jwks_route.mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(UpstreamUnavailable):
            await wired.validator.verify_jwt(mint(user_claims()))


class TestAlgorithmConfusion:
    """Refused from the header alone: no key lookup, no HTTP call."""

    @pytest.mark.parametrize(
        "token",
        [
            pytest.param(mint(user_claims(), key=None, alg="none"), id="alg-none"),
            pytest.param(
                mint(user_claims(), key=None, alg="none", headers={"alg": "None"}), id="alg-None"
            ),
            pytest.param(mint(user_claims(), key=PUBLIC_KEY_PEM, alg="HS256"), id="hs256-pubkey"),
            pytest.param(mint(user_claims(), alg="RS384"), id="rs384"),
            pytest.param(mint(user_claims(), alg="PS256"), id="ps256"),
            pytest.param(mint(user_claims(), kid=None), id="no-kid"),
            pytest.param(mint(user_claims(), headers={"kid": 7}), id="kid-not-a-string"),
            pytest.param(mint(user_claims(), headers={"kid": ""}), id="kid-empty"),
            pytest.param(mint(user_claims(), headers={"crit": ["exp"]}), id="crit"),
        ],
    )
    async def test_refused_before_any_key_lookup(self, wired: Wired, token: str) -> None:
        assert wired.validator.classify(token) == "jwt"
        await rejected(wired, token)
        assert wired.router.calls.call_count == 0

    async def test_hs256_with_public_key_even_after_keys_are_cached(self, wired: Wired) -> None:
        await wired.validator.verify_jwt(mint(user_claims()))
        await rejected(wired, mint(user_claims(), key=PUBLIC_KEY_PEM, alg="HS256"))


class TestClaims:
    @pytest.mark.parametrize("claim", ["exp", "sub", "iss", "aud"])
    async def test_missing_required_claim(self, wired: Wired, claim: str) -> None:
        await rejected(wired, mint(user_claims(**{claim: None})))

    @pytest.mark.parametrize(
        "overrides",
        [
            {"sub": ""},
            {"sub": 42},
            {"exp": "tomorrow"},
            {"nbf": "soon"},
            {"iat": "now"},
            {"iat": True},
            {"iat": [1]},
            {"iss": ["https://tenant.example.test/"]},
            {"aud": {"api": AUDIENCE}},
            {"aud": [AUDIENCE, 7]},
        ],
        ids=repr,
    )
    async def test_ill_typed_claims(self, wired: Wired, overrides: dict[str, Any]) -> None:
        await rejected(wired, mint(user_claims(**overrides)))


class TestAllowExpired:
    async def test_accepts_an_expired_token(self, wired: Wired) -> None:
        claims = user_claims(iat=now() - 7200, exp=now() - 3600)
        assert await wired.validator.verify_jwt(mint(claims), allow_expired=True) == claims

    async def test_still_checks_everything_else(self, wired: Wired) -> None:
        expired = {"iat": now() - 7200, "exp": now() - 3600}
        for token in (
            mint(user_claims(**expired), key=OTHER_PRIVATE_KEY),
            mint(user_claims(**expired, iss="https://evil.example.test/")),
            mint(user_claims(**expired, aud="https://api.other.test")),
            mint(user_claims(**expired, nbf=now() + 600)),
            mint(user_claims(**expired), key=None, alg="none"),
            mint(user_claims(iat=expired["iat"], exp=None)),
        ):
            assert (await rejected(wired, token, allow_expired=True)).description == INVALID


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# The parts of a compact JWE as Auth0 issues one without an audience (alg dir: no encrypted key)
JWE_HEADER = _b64url(b'{"alg":"dir","enc":"A256GCM","iss":"https://tenant.example/"}')
JWE_IV = _b64url(b"\x01" * 12)
JWE_CIPHERTEXT = _b64url(b"\x02" * 90)
JWE_TAG = _b64url(b"\x03" * 16)
JWE = f"{JWE_HEADER}..{JWE_IV}.{JWE_CIPHERTEXT}.{JWE_TAG}"

GARBAGE = [
    "",
    " ",
    "null",
    "Bearer abc",
    "short",
    "a" * 15,
    "a" * 513,
    "abc.def",
    "a.b.c.d",
    "...",
    "..",
    "a..b",
    ".a.b",
    "é" * 40,
    "abcdefghijklmnop\n",
    "abcdefghijklmnop\x00",
    "abcdefghij\tklmnop",
    "abcdefghij klmnop",
    "abcdefghijklmnop=",
    "abcdefghijklmno+/",
    "YWJj.e30.c2ln",  # header "abc": not JSON
    "W10.e30.c2ln",  # header []: not an object
    "IkhTMjU2Ig.e30.c2ln",  # header "HS256": a string
    "e30=.e30.c2ln",  # padding is not base64url
    "a.e30.c2ln",  # a header of one character cannot decode
    "e30.e30.c2ln" + "A" * MAX_TOKEN_LENGTH,  # too long
    "e30.%%%.c2ln",
    "e30..c2ln",
    "eyJhbGciOiJSUzI1NiJ9.e30.c2ln.",
    "eyJhbGciOiJSUzI1NiJ9\u200b.e30.c2ln",
    "eyJhbGciOiJSUzI1NiIs.e30.c2ln",  # truncated JSON
    # five parts that are not a compact JWE
    "....",
    f"{JWE_HEADER}..{JWE_IV}..{JWE_TAG}",  # no ciphertext
    f"{JWE_HEADER}...{JWE_CIPHERTEXT}.{JWE_TAG}",  # no IV
    f"e30..{JWE_IV}.{JWE_CIPHERTEXT}.{JWE_TAG}",  # header {}: no enc
    f"eyJhbGciOiJSUzI1NiJ9..{JWE_IV}.{JWE_CIPHERTEXT}.{JWE_TAG}",  # a JWS header
    f"YWJj..{JWE_IV}.{JWE_CIPHERTEXT}.{JWE_TAG}",  # header "abc": not JSON
    f"{JWE_HEADER}..{JWE_IV}=.{JWE_CIPHERTEXT}.{JWE_TAG}",  # padding
    f"{JWE_HEADER}.%%.{JWE_IV}.{JWE_CIPHERTEXT}.{JWE_TAG}",
    f"{JWE_HEADER}..{JWE_IV}.{JWE_CIPHERTEXT}.{JWE_TAG}.",  # six parts
    f"{JWE_HEADER}..{JWE_IV}.{JWE_CIPHERTEXT}." + "A" * MAX_TOKEN_LENGTH,  # too long
]


class TestClassify:
    def test_jwt(self) -> None:
        assert TokenValidator.classify(mint(user_claims())) == "jwt"
        assert TokenValidator.classify("e30.e30.") == "jwt"

    @pytest.mark.parametrize(
        "token", ["a" * 16, "a" * 512, "Xy9_-Q" * 6, "gKgK1bHbLZ1pQ7JWcb8zMFXR9wZn3S-_"]
    )
    def test_opaque(self, token: str) -> None:
        assert TokenValidator.classify(token) == "opaque"

    def test_an_encrypted_userinfo_token_is_opaque(self) -> None:
        # Auth0's token without an audience: a compact JWE only /userinfo can read
        assert TokenValidator.classify(JWE) == "opaque"
        # another key-management algorithm fills the encrypted-key part
        with_key = f"{JWE_HEADER}.{_b64url(b'k' * 256)}.{JWE_IV}.{JWE_CIPHERTEXT}.{JWE_TAG}"
        assert TokenValidator.classify(with_key) == "opaque"

    @pytest.mark.parametrize("token", GARBAGE, ids=range(len(GARBAGE)))
    def test_malformed(self, token: str) -> None:
        assert TokenValidator.classify(token) == "malformed"

    async def test_malformed_and_opaque_never_reach_the_network(self, wired: Wired) -> None:
        for token in [*GARBAGE, "a" * 32, JWE]:
            await rejected(wired, token)
        assert wired.router.calls.call_count == 0


class TestPrincipal:
    def test_from_claims_and_profile(self) -> None:
        claims = user_claims()
        profile = {"sub": SUB, "email": "jane@example.com", "name": "Jane", "picture": "x"}

        principal = TokenValidator.principal_from_claims(claims, profile)

        assert principal.sub == SUB
        assert principal.email == "jane@example.com"
        assert principal.name == "Jane"
        assert principal.permissions == ("read:venues", "create:venues")
        assert principal.scopes == ("openid", "profile", "email", "offline_access")
        assert principal.client_id == CLIENT_ID
        assert principal.expires_at == claims["exp"]
        assert principal.opaque is False
        assert principal.has("read:venues")
        assert not principal.has("email"), "a scope is not a permission"

    def test_without_profile_or_optional_claims(self) -> None:
        claims = user_claims(permissions=None, scope=None, azp=None, client_id="rfc9068-client")
        principal = TokenValidator.principal_from_claims(claims, None)
        assert (principal.email, principal.name) == (None, None)
        assert principal.permissions == ()
        assert principal.scopes == ()
        assert principal.client_id == "rfc9068-client"

    def test_a_profile_of_another_user_is_ignored(self) -> None:
        principal = TokenValidator.principal_from_claims(
            user_claims(), {"sub": "auth0|someone-else", "email": "x@example.com"}
        )
        assert principal.email is None

    def test_ill_typed_values_are_dropped(self) -> None:
        principal = TokenValidator.principal_from_claims(
            user_claims(permissions=["read:venues", 3, None], azp=5),
            {"sub": SUB, "email": ["x"], "name": 7},
        )
        assert principal.permissions == ("read:venues",)
        assert principal.client_id is None
        assert (principal.email, principal.name) == (None, None)

    async def test_from_verified_claims(self, wired: Wired) -> None:
        claims = await wired.validator.verify_jwt(mint(user_claims()))
        assert wired.validator.principal_from_claims(claims).sub == SUB

    def test_scopes_count_as_permissions_only_when_configured(self) -> None:
        claims = user_claims(permissions=None, scope="openid read:venues")
        assert not TokenValidator.principal_from_claims(claims).has("read:venues")
        folded = TokenValidator.principal_from_claims(claims, scopes_as_permissions=True)
        assert folded.has("read:venues")


class TestStrictClaimTypes:
    @pytest.mark.parametrize(
        "changes",
        [
            {"exp": "99999999999"},
            {"exp": True},
            {"nbf": "0"},
            {"iat": "1700000000"},
            {"permissions": "read:venues"},
            {"permissions": ["read:venues", 3]},
            {"scope": ["openid"]},
        ],
        ids=["exp-string", "exp-bool", "nbf-string", "iat-string", "perm-str", "perm-int", "scope"],
    )
    async def test_claims_of_the_wrong_type_are_refused(
        self, wired: Wired, changes: dict[str, Any]
    ) -> None:
        await rejected(wired, mint({**user_claims(), **changes}))
