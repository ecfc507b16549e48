"""The session cipher: Fernet with rotation, and the keys it derives."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.auth.cipher import SessionCipher, generate_key
from settings.model import SessionSettings


class TestSessionCipher:
    def test_round_trip_with_a_generated_key(self) -> None:
        cipher = SessionCipher([generate_key()])

        token = cipher.encrypt(b"secret")

        assert b"secret" not in token
        assert cipher.decrypt(token) == b"secret"
        assert not cipher.is_ephemeral

    def test_wrong_key_or_tampering_decrypts_to_none(self) -> None:
        token = SessionCipher([generate_key()]).encrypt(b"secret")

        assert SessionCipher([generate_key()]).decrypt(token) is None
        assert SessionCipher([generate_key()]).decrypt(b"not a fernet token") is None

    def test_refuses_no_keys_and_bad_keys_without_echoing_them(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            SessionCipher([])
        with pytest.raises(ValueError, match="#2") as raised:
            SessionCipher([generate_key(), SecretStr("hunter2-not-a-key")])
        assert "hunter2" not in str(raised.value)

    def test_keys_from_settings(self) -> None:
        key = generate_key()
        settings = SessionSettings.model_validate({"keys": f"{key},{generate_key()}"})

        cipher = SessionCipher.from_settings(settings)

        assert SessionCipher([key]).decrypt(cipher.encrypt(b"x")) == b"x"

    def test_ephemeral_only_when_allowed(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            SessionCipher.from_settings(SessionSettings())

        cipher = SessionCipher.from_settings(SessionSettings(), allow_ephemeral=True)

        assert cipher.is_ephemeral
        assert cipher.decrypt(cipher.encrypt(b"x")) == b"x"
        assert not SessionCipher.from_settings(
            SessionSettings(keys=[SecretStr(generate_key())]), allow_ephemeral=True
        ).is_ephemeral

    def test_derived_keys_follow_the_session_keys(self) -> None:
        first, second = generate_key(), generate_key()
        rotated = SessionCipher([second, first]).derive_keys("cache entry mac")
        assert rotated == [
            SessionCipher([second]).derive_keys("cache entry mac")[0],
            SessionCipher([first]).derive_keys("cache entry mac")[0],
        ]
        assert len(rotated[0]) == 32
        assert rotated[0] != SessionCipher([second]).derive_keys("another purpose")[0]
