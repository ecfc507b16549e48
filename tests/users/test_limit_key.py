"""The sign-up limit's key: one IPv4 address, or one IPv6 /64."""

from __future__ import annotations

from app.users.service import _limit_key


def test_ipv4_counts_per_address() -> None:
    assert _limit_key("203.0.113.7") != _limit_key("203.0.113.8")


def test_ipv6_counts_per_64() -> None:
    assert _limit_key("2001:db8:1:2::1") == _limit_key("2001:db8:1:2:ffff::9")
    assert _limit_key("2001:db8:1:2::1") != _limit_key("2001:db8:1:3::1")


def test_unknown_callers_share_one_bucket() -> None:
    assert _limit_key(None) == "unknown"
