"""``GET /auth/me`` writes the principal's JSON itself: the bytes pydantic would write."""

from __future__ import annotations

import pytest

from app.auth.principal import Principal
from app.routers.auth import PrincipalOut, principal_json


@pytest.mark.parametrize(
    "principal",
    [
        Principal(
            sub="auth0|demo-viewer",
            email="viewer@venues.local",
            name="Demo Viewer",
            permissions=("read:venues",),
            scopes=("openid", "profile", "email", "read:venues"),
            expires_at=1_795_937_960,
        ),
        Principal(sub="auth0|x", expires_at=1, permissions=(), scopes=()),
        Principal(
            sub='auth0|"quoted"\\ünïcode 🎫',
            email="ä@example.com",
            name="Zoë \u2028 O'Brien",
            permissions=("create:venues", "read:venues"),
            scopes=("openid",),
            expires_at=2_000_000_000,
        ),
    ],
)
def test_the_body_is_what_the_response_model_writes(principal: Principal) -> None:
    assert principal_json(principal) == PrincipalOut.of(principal).model_dump_json().encode()
