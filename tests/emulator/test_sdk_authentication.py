"""The official auth0-python SDK against the emulator, unchanged.

auth0-python 6.8 still takes ``protocol="http"`` on its authentication classes and builds URLs
as ``f"{protocol}://{domain}/..."``, so ``domain="127.0.0.1:<port>"`` aims it at the emulator.
The SDK is synchronous (requests); these tests are plain functions against the running server.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from auth0.authentication import GetToken, RevokeToken, Users
from auth0.authentication.exceptions import Auth0Error, RateLimitError

from tests.conftest import RunningEmulator
from tests.emulator.auth_helpers import ADMIN, API, CLIENT_ID, CLIENT_SECRET, REALM

SCOPE = "openid profile email offline_access"


def _domain(emulator: RunningEmulator) -> str:
    return emulator.url.removeprefix("http://")


def _get_token(emulator: RunningEmulator) -> Any:
    return GetToken(_domain(emulator), CLIENT_ID, client_secret=CLIENT_SECRET, protocol="http")


def _login(emulator: RunningEmulator, password: str = ADMIN[1], **kwargs: Any) -> Any:
    return _get_token(emulator).login(
        ADMIN[0], password, realm=REALM, audience=API, scope=SCOPE, **kwargs
    )


def test_login(emulator: RunningEmulator) -> None:
    tokens = _login(emulator, forwarded_for="203.0.113.10")
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    assert tokens["id_token"]
    access = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert access["aud"] == [API, f"{emulator.issuer}userinfo"]
    assert access["sub"] == "auth0|demo-admin"


def test_login_with_plain_password_grant(emulator: RunningEmulator) -> None:
    # ``realm`` goes out as JSON null here; the default directory is used.
    tokens = _get_token(emulator).login(ADMIN[0], ADMIN[1], audience=API, grant_type="password")
    assert tokens["access_token"]


def test_wrong_password(emulator: RunningEmulator) -> None:
    with pytest.raises(Auth0Error) as caught:
        _login(emulator, password="wrong")
    assert caught.value.status_code == 403
    assert caught.value.error_code == "invalid_grant"
    assert caught.value.message == "Wrong email or password."


def test_forwarded_for_keys_brute_force_protection(emulator: RunningEmulator) -> None:
    for _ in range(10):
        with pytest.raises(Auth0Error):
            _login(emulator, password="wrong", forwarded_for="203.0.113.66")
    with pytest.raises(RateLimitError) as caught:
        _login(emulator, forwarded_for="203.0.113.66")
    assert caught.value.error_code == "too_many_attempts"
    assert _login(emulator, forwarded_for="198.51.100.1")["access_token"]


def test_refresh_token_rotates(emulator: RunningEmulator) -> None:
    first = _login(emulator)["refresh_token"]
    # The SDK sends ``"scope": ""`` by default: the original scope is kept.
    refreshed = _get_token(emulator).refresh_token(first)
    assert refreshed["scope"].startswith(SCOPE)
    assert refreshed["refresh_token"] != first
    with pytest.raises(Auth0Error) as caught:
        _get_token(emulator).refresh_token(first)
    assert caught.value.status_code == 403
    assert caught.value.message == "Unknown or invalid refresh token."


def test_revoke_refresh_token(emulator: RunningEmulator) -> None:
    token = _login(emulator)["refresh_token"]
    revoker = RevokeToken(
        _domain(emulator), CLIENT_ID, client_secret=CLIENT_SECRET, protocol="http"
    )
    assert revoker.revoke_refresh_token(token) == ""
    with pytest.raises(Auth0Error) as caught:
        _get_token(emulator).refresh_token(token)
    assert caught.value.error_code == "invalid_grant"


def test_userinfo(emulator: RunningEmulator) -> None:
    access_token = _login(emulator)["access_token"]
    profile = Users(_domain(emulator), protocol="http").userinfo(access_token)
    assert profile["sub"] == "auth0|demo-admin"
    assert profile["email"] == ADMIN[0]
    assert profile["updated_at"].endswith("Z")


def test_userinfo_rejects_garbage(emulator: RunningEmulator) -> None:
    with pytest.raises(Auth0Error) as caught:
        Users(_domain(emulator), protocol="http").userinfo("garbage")
    assert caught.value.status_code == 401
    # The plain-text body reaches the SDK as the message.
    assert caught.value.message == "Unauthorized"


def test_client_credentials(emulator: RunningEmulator) -> None:
    tokens = _get_token(emulator).client_credentials(f"{emulator.issuer}api/v2/")
    assert set(tokens) == {"access_token", "token_type", "expires_in", "scope"}
