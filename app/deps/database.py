"""A database session per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps.security import ServicesDep


async def database_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    """A session on the app's database, closed (and any open transaction rolled back) after."""
    async with services.database.sessions() as session:
        yield session


DatabaseSession = Annotated[AsyncSession, Depends(database_session)]
