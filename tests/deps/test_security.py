"""The scope check dependency and the bearer parsing, on a small app of their own."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from app.auth.principal import Principal
from app.deps.security import RequireScopes, current_principal
from app.http.errors import install_error_handlers

VIEWER = Principal(
    sub="auth0|viewer",
    permissions=("read:venues",),
    scopes=("openid",),
    expires_at=int(time.time()) + 600,
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)

    @app.delete("/things")
    async def delete_things(
        principal: Annotated[Principal, Depends(RequireScopes("delete:venues", "read:venues"))],
    ) -> dict[str, str]:
        return {"sub": principal.sub}

    @app.get("/things")
    async def list_things(
        principal: Annotated[Principal, Depends(RequireScopes("read:venues"))],
    ) -> dict[str, str]:
        return {"sub": principal.sub}

    async def viewer() -> Principal:
        return VIEWER

    app.dependency_overrides[current_principal] = viewer
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http


async def test_granted_permission_passes(client: httpx.AsyncClient) -> None:
    response = await client.get("/things")
    assert response.status_code == 200
    assert response.json() == {"sub": "auth0|viewer"}


async def test_missing_permission_is_403_with_the_rfc6750_challenge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/things")
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope"')
    assert 'scope="delete:venues read:venues"' in challenge
