"""Whatever it is sent: any ``Authorization`` header, any session cookie, any login body.

Property tests (Hypothesis): any bytes, any length, any encoding. The gateway never answers 5xx,
always answers in its one error shape, and never calls Auth0 for a malformed token or a login
body it cannot read. Header values go in as raw bytes through the ASGI transport, so even bytes
a real HTTP server would refuse (CR, LF, NUL, obs-text) reach the app.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.clients.token_validator import TokenValidator
from tests.e2e.conftest import bearer, emulator_stats
from tests.e2e.test_token_validation import direct_token

pytestmark = pytest.mark.resilience

EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    database=None,
    # the gateway and the emulator are made once per test, not per example: on purpose
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ENCODINGS = ["utf-8", "utf-16", "utf-32", "latin-1", "cp1252", "shift_jis", "utf-7"]
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def encoded(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """``text`` in any of several encodings (unencodable characters dropped)."""
    return st.tuples(text, st.sampled_from(ENCODINGS)).map(
        lambda pair: pair[0].encode(pair[1], errors="ignore")
    )


def token_like() -> st.SearchStrategy[str]:
    """Values shaped roughly like JWTs: dot-separated runs of base64url and other characters."""
    segment = st.text(alphabet=BASE64URL + "=+/.%~ ", max_size=400)
    return st.lists(segment, min_size=1, max_size=5).map(".".join)


def authorization_values() -> st.SearchStrategy[list[bytes]]:
    """One or two ``Authorization`` header values: raw bytes, ``Bearer <anything>``, long ones."""
    value = st.one_of(
        st.binary(max_size=300),
        st.builds(lambda raw: b"Bearer " + raw, st.binary(max_size=6000)),
        st.builds(lambda raw: b"Bearer " + raw, encoded(st.text(max_size=300))),
        st.builds(lambda raw: b"Bearer " + raw.encode(), token_like()),
        st.builds(
            lambda scheme, raw: scheme + raw,
            st.sampled_from([b"bearer ", b"BEARER  ", b"Bearer\t", b"Basic ", b"Bearer"]),
            st.binary(max_size=200),
        ),
    )
    return st.lists(value, min_size=1, max_size=2)


def gateway_token(values: list[bytes]) -> str | None:
    """The bearer token the gateway reads from these header values (as Starlette decodes them)."""
    header = values[0].decode("latin-1")
    scheme, _, token = header.partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def upstream_calls(stats: dict[str, Any]) -> int:
    """Every request the emulator counted."""
    return sum(stats["requests"].values())


@pytest.fixture
async def warm_gateway(
    gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient
) -> httpx.AsyncClient:
    """The gateway after one valid token: the tenant's keys are cached, as in any running one."""
    valid = await direct_token(emulator_http)
    assert (await gateway.get("/auth/me", headers=bearer(valid))).status_code == 200
    return gateway


@EXAMPLES
@given(values=authorization_values())
async def test_any_authorization_header_is_a_401_without_calling_auth0(
    warm_gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient, values: list[bytes]
) -> None:
    before = upstream_calls(await emulator_stats(emulator_http))
    headers = [(b"authorization", value) for value in values]
    response = await warm_gateway.get("/auth/me", headers=headers)
    event(f"{response.status_code} {response.json().get('error')}")
    assert response.status_code == 401, response.text
    assert response.json()["error"] in {"invalid_request", "invalid_token"}
    assert response.headers["www-authenticate"].startswith("Bearer")
    token = gateway_token(values)
    if token is None or TokenValidator.classify(token) == "malformed":
        after = upstream_calls(await emulator_stats(emulator_http))
        assert after == before, f"a malformed token reached Auth0: {values!r}"


def cookie_headers() -> st.SearchStrategy[bytes]:
    """A ``Cookie`` header: raw bytes, or the session cookie with any value, method any."""
    return st.one_of(
        st.binary(max_size=300),
        st.builds(lambda raw: b"__Host-vg_session=" + raw, st.binary(max_size=6000)),
        st.builds(
            lambda raw: b"a=1; __Host-vg_session=" + raw.encode() + b"; b",
            st.text(alphabet=BASE64URL + '";=, \\', max_size=100),
        ),
    )


@EXAMPLES
@given(cookie=cookie_headers(), method=st.sampled_from(["GET", "POST", "DELETE"]))
async def test_any_session_cookie_is_a_4xx_without_calling_auth0(
    warm_gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient, cookie: bytes, method: str
) -> None:
    before = upstream_calls(await emulator_stats(emulator_http))
    headers = [(b"cookie", cookie), (b"origin", b"http://gateway"), (b"x-requested-with", b"1")]
    path = "/auth/me" if method == "GET" else "/venues"
    response = await warm_gateway.request(method, path, headers=headers, json={})
    event(f"{response.status_code} {response.json().get('error')}")
    assert response.status_code in {401, 405}, response.text
    assert set(response.json()) == {"error", "error_description"}
    assert upstream_calls(await emulator_stats(emulator_http)) == before


CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "application/xml",
    "application/json\x00",
    "*/*; q=0",
]
CREDENTIALS = st.fixed_dictionaries(
    {},
    optional={
        "username": st.one_of(st.text(max_size=400), st.integers(), st.none(), st.lists(st.text())),
        "password": st.one_of(st.text(max_size=1100), st.booleans(), st.floats()),
        "grant_type": st.text(max_size=20),
    },
)


def login_bodies() -> st.SearchStrategy[tuple[str | None, bytes]]:
    """A content type and a body: any bytes, JSON of any shape in any encoding, forms, bodies
    beyond the 16 kB limit, and well-formed credentials of any text (which Auth0 then sees)."""
    json_text = st.one_of(
        CREDENTIALS.map(json.dumps),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.text(max_size=50),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner),
            max_leaves=10,
        ).map(json.dumps),
    )
    form = st.dictionaries(st.text(max_size=50), st.text(max_size=200), max_size=4).map(
        lambda fields: "&".join(f"{k}={v}" for k, v in fields.items())
    )
    anything = st.one_of(
        st.binary(max_size=2000),
        encoded(json_text),
        encoded(form),
        st.integers(16_380, 17_000).map(lambda n: b'{"username": "' + b"u" * n + b'"}'),
    )
    credentials = st.fixed_dictionaries(
        {"username": st.text(min_size=1, max_size=320), "password": st.text(min_size=1)}
    )
    well_formed = st.one_of(
        st.tuples(
            st.just("application/json"),
            st.tuples(credentials, st.sampled_from(["utf-8", "utf-16", "utf-32"])).map(
                lambda pair: json.dumps(pair[0], ensure_ascii=False).encode(pair[1], "ignore")
            ),
        ),
        st.tuples(
            st.just("application/x-www-form-urlencoded"),
            credentials.map(lambda fields: urlencode(fields).encode()),
        ),
    )
    return st.one_of(st.tuples(st.sampled_from(CONTENT_TYPES), anything), well_formed)


@EXAMPLES
@given(attempt=login_bodies())
async def test_any_login_body_is_refused_without_calling_auth0(
    gateway: httpx.AsyncClient, emulator_http: httpx.AsyncClient, attempt: tuple[str | None, bytes]
) -> None:
    content_type, body = attempt
    before = upstream_calls(await emulator_stats(emulator_http))
    headers = [] if content_type is None else [(b"content-type", content_type.encode())]
    response = await gateway.post("/auth/login", content=body, headers=headers)
    event(f"{response.status_code} {response.json().get('error')}")
    assert response.status_code < 500, response.text
    error = response.json()
    assert set(error) <= {"error", "error_description", "details"}, error
    if response.status_code in {400, 413, 415, 422}:
        after = upstream_calls(await emulator_stats(emulator_http))
        assert after == before, "an unreadable login body reached Auth0"
    else:  # the body was read: a login attempt for a user the tenant does not have
        assert response.status_code in {401, 429}, response.text
