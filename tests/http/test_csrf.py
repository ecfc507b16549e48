"""The CSRF check of cookie mode, on requests as Starlette builds them."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from app.http.csrf import CsrfFailed, check_csrf, request_origin

SPA = "https://app.venues.example"


def request(method: str, headers: dict[str, str], scheme: str = "https") -> Request:
    """A request to the gateway at api.venues.example."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"host", b"api.venues.example"))
    scope = {
        "type": "http",
        "method": method,
        "scheme": scheme,
        "path": "/venues",
        "query_string": b"",
        "headers": raw,
        "server": ("api.venues.example", 443),
    }
    return Request(scope)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safe_methods_pass_unchecked(method: str) -> None:
    check_csrf(request(method, {"Origin": "https://evil.example"}), [SPA])


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": SPA, "X-Requested-With": "fetch"},
        {"Origin": f"{SPA}/", "X-Requested-With": ""},
        {"Referer": f"{SPA}/venues?page=2", "X-Requested-With": "1"},
        {"Origin": "https://api.venues.example", "X-Requested-With": "1"},  # its own origin
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_allowed_changes(method: str, headers: dict[str, str]) -> None:
    check_csrf(request(method, headers), [SPA])


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": SPA},
        {"X-Requested-With": "1"},
        {"Origin": "null", "X-Requested-With": "1"},
        {"Origin": "https://evil.example", "X-Requested-With": "1"},
        {"Origin": "http://app.venues.example", "X-Requested-With": "1"},  # another scheme
        {"Origin": "https://app.venues.example:8443", "X-Requested-With": "1"},  # another port
        {"Origin": "https://evil.example", "Referer": f"{SPA}/", "X-Requested-With": "1"},
        {"Referer": "app.venues.example/venues", "X-Requested-With": "1"},
        {"Origin": "http://api.venues.example", "X-Requested-With": "1"},  # its own, over http
    ],
)
def test_refused_changes(headers: dict[str, str]) -> None:
    with pytest.raises(CsrfFailed) as caught:
        check_csrf(request("POST", headers), [SPA])
    assert (caught.value.status_code, caught.value.code) == (403, "csrf_failed")


def test_the_origin_wins_over_the_referer() -> None:
    both = request("POST", {"Origin": SPA, "Referer": "https://evil.example/"})
    assert request_origin(both) == SPA
