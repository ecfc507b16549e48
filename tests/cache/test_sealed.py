"""Sealed cache entries: a value is served only if this deployment wrote it at this key."""

from __future__ import annotations

import logging

import pytest

from app.auth.cipher import SessionCipher, generate_key
from app.cache.sealed import EntrySealer


def sealer(*keys: str) -> EntrySealer:
    """A sealer over the MAC keys derived from ``keys`` (newest first)."""
    return EntrySealer(SessionCipher(list(keys)).derive_keys("cache entry mac"))


class TestEntrySealer:
    def test_round_trip(self) -> None:
        seal = sealer(generate_key())
        assert seal.open("ns:principal:a", seal.seal("ns:principal:a", b"{}")) == b"{}"

    def test_a_plain_or_tampered_value_is_refused(self, caplog: pytest.LogCaptureFixture) -> None:
        rejected: list[int] = []
        seal = EntrySealer(
            SessionCipher([generate_key()]).derive_keys("cache entry mac"),
            on_rejected=lambda: rejected.append(1),
        )
        sealed = seal.seal("k", b'{"sub": "alice"}')
        tampered = sealed[:-6] + b'mall"}'
        with caplog.at_level(logging.WARNING):
            assert seal.open("k", b'{"sub": "mallory"}') is None
            assert seal.open("k", tampered) is None
            assert seal.open("k", b"") is None
        assert seal.rejected == 3
        assert len(rejected) == 3
        # logged once, not once per entry, and without the value
        warnings = [r for r in caplog.records if r.name == "app.cache.sealed"]
        assert len(warnings) == 1
        assert "mallory" not in warnings[0].getMessage()

    def test_an_entry_moved_to_another_key_is_refused(self) -> None:
        seal = sealer(generate_key())
        assert seal.open("ns:principal:b", seal.seal("ns:principal:a", b"{}")) is None

    def test_another_deployment_cannot_write_for_this_one(self) -> None:
        ours, theirs = sealer(generate_key()), sealer(generate_key())
        assert ours.open("k", theirs.seal("k", b"{}")) is None

    def test_key_rotation_keeps_entries_readable(self) -> None:
        old, new = generate_key(), generate_key()
        before = sealer(old)
        after = sealer(new, old)
        assert after.open("k", before.seal("k", b"v")) == b"v"
        assert before.open("k", after.seal("k", b"v")) is None

    def test_needs_a_key(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            EntrySealer([])
