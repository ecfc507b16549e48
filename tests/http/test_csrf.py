"""The CSRF check of cookie mode, on requests as Starlette builds them."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import Request

from app.http.csrf import CsrfFailed, check_csrf, own_origin, request_origin

SPA = "https://app.venues.example"
PROXY = "10.0.0.5"
TRUSTED = [ipaddress.ip_network("10.0.0.0/24")]
#: A change sent by the gateway's own page at https://api.venues.example.
FROM_BROWSER = {"Origin": "https://api.venues.example", "X-Requested-With": "1"}


def request(
    method: str,
    headers: dict[str, str],
    scheme: str = "https",
    *,
    peer: str = "192.0.2.7",
    host: str = "api.venues.example",
) -> Request:
    """A request to the gateway at ``host`` from ``peer``."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"host", host.encode("latin-1")))
    scope = {
        "type": "http",
        "method": method,
        "scheme": scheme,
        "path": "/venues",
        "query_string": b"",
        "headers": raw,
        "server": ("api.venues.example", 443),
        "client": (peer, 50123),
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


class TestBehindAProxy:
    """A proxy that terminates TLS: the gateway sees http, the browser used https."""

    def proxied(self, peer: str = PROXY, **forwarded: str) -> Request:
        headers = {**FROM_BROWSER, **forwarded}
        return request("POST", headers, "http", peer=peer, host="gateway.internal:8000")

    def test_a_trusted_proxys_forwarded_scheme_and_host_make_the_own_origin(self) -> None:
        sent = self.proxied(
            **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.venues.example"}
        )
        assert own_origin(sent, TRUSTED) == "https://api.venues.example"
        check_csrf(sent, [SPA], TRUSTED)

    def test_the_host_header_passed_on_by_the_proxy_is_enough(self) -> None:
        sent = request(
            "POST",
            {**FROM_BROWSER, "X-Forwarded-Proto": "https"},
            "http",
            peer=PROXY,
            host="api.venues.example",
        )
        check_csrf(sent, [SPA], TRUSTED)

    def test_the_outermost_value_and_default_ports(self) -> None:
        sent = self.proxied(
            **{
                "X-Forwarded-Proto": "HTTPS, http",
                "X-Forwarded-Host": "API.venues.example:443, gateway.internal",
            }
        )
        assert own_origin(sent, TRUSTED) == "https://api.venues.example"

    def test_forwarded_headers_from_anyone_else_count_for_nothing(self) -> None:
        sent = self.proxied(
            peer="192.0.2.7",
            **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.venues.example"},
        )
        assert own_origin(sent, TRUSTED) == "http://gateway.internal:8000"
        with pytest.raises(CsrfFailed):
            check_csrf(sent, [SPA], TRUSTED)

    def test_without_the_proxy_trusted_the_https_origin_is_foreign(self) -> None:
        sent = self.proxied(**{"X-Forwarded-Proto": "https"})
        with pytest.raises(CsrfFailed):
            check_csrf(sent, [SPA], [])

    def test_a_forwarded_scheme_other_than_http_or_https_is_no_origin(self) -> None:
        assert own_origin(self.proxied(**{"X-Forwarded-Proto": "javascript"}), TRUSTED) is None
